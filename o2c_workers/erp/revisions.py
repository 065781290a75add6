"""The keys of one opportunity's ERP orders: one per revision, all on the unique index.

The unique ``salesforce_id`` holds cancelled documents too, so an amendment cannot take its
predecessor's key. Revision 0 (the first order) is keyed by the opportunity's 18-character
id, revision ``n`` by ``<id>-<n>``; the next key is derived from the highest revision that
exists. Two processes that amend the same order at once derive the same key, and the
unique index lets only one of them create it: one opportunity never has two live orders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from o2c_workers import sfid
from o2c_workers.errors import InvalidPayload
from o2c_workers.models import ErpOrder


@dataclass(frozen=True, order=True)
class Revision:
    """Which opportunity a key belongs to, and which of its orders it names."""

    opportunity_id: str
    number: int = 0

    @property
    def key(self) -> str:
        return self.opportunity_id if self.number == 0 else f"{self.opportunity_id}-{self.number}"

    def next(self) -> Revision:
        return Revision(self.opportunity_id, self.number + 1)


def first(opportunity_id: str) -> Revision:
    return Revision(sfid.to18(opportunity_id))


def parse(salesforce_id: str) -> Revision:
    """The revision a ``salesforce_id`` names (15- or 18-character ids alike)."""
    base, dash, number = salesforce_id.partition("-")
    if not sfid.is_valid(base) or (dash and not (number.isdigit() and int(number) > 0)):
        raise InvalidPayload(f"not the key of an opportunity's ERP order: {salesforce_id!r}",
                             reason="bad_order_key")
    return Revision(sfid.to18(base), int(number) if dash else 0)


def latest(orders: Iterable[ErpOrder]) -> ErpOrder | None:
    """The order of the highest revision (the one an amendment follows)."""
    return max(orders, key=lambda order: parse(order.salesforce_id), default=None)


def keys_of(opportunity_id: str) -> tuple[list[str], str]:
    """What finds every order of an opportunity: its ids (15 and 18 characters), and the
    ``LIKE`` pattern of its amendments."""
    base = sfid.to18(opportunity_id)
    return sorted({base, sfid.to15(base)}), f"{base}-%"
