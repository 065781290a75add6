"""What the fleet has seen of ERP documents: the newest version of each, and the booking
facts of submitted orders.

**Versions.** Every Sales Order, Sales Invoice and Payment Entry the adapter reads, creates
or cancels, and every webhook event's document, notes its ``modified`` here; one script
keeps the newest (``keys.erp_version``). An event whose document is not older than that is
applied as it came; an older one is stale (a newer version was seen: a later event, the
order step's own cancel) and the document is read again, so the current state decides.

**Booked orders.** Once submitted, an order's key, customer, currency, totals and lines
never change (ERPNext changes them only by cancel and amend, which makes another order), so
they are kept (``keys.erp_booked``) for the invoices and payments that check against them.

Like the master-data cache it is a shortcut: when Redis fails, a version counts as not
newest (the document is read) and a booked order as unknown (it is read).
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import cast

import redis

from o2c_workers import keys
from o2c_workers.models import ErpOrder

log = logging.getLogger("o2c.erp.versions")

_NOTE = """
local seen = redis.call('GET', KEYS[1])
if seen and seen > ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def normalize(modified: str | None) -> str | None:
    """One form of a version (``2026-11-20T13:40:22.123456``), which sorts as the times do;
    None when ``modified`` is absent or not a time."""
    if not modified:
        return None
    try:
        stamp = dt.datetime.fromisoformat(str(modified).strip())
    except ValueError:
        return None
    return stamp.replace(tzinfo=None).isoformat(timespec="microseconds")


class Versions:
    def __init__(self, client: redis.Redis, prefix: str, *, ttl_s: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._note = client.register_script(_NOTE)

    def note(self, doctype: str, name: str, modified: str | None) -> bool:
        """Remember this version; whether it is the newest seen (equal counts)."""
        version = normalize(modified)
        if version is None:
            return False
        try:
            return bool(self._note(keys=[keys.erp_version(self.prefix, doctype, name)],
                                   args=[version, self.ttl_s]))
        except redis.RedisError as exc:
            log.warning("ERP document versions unavailable: %s", type(exc).__name__)
            return False

    def booked(self, name: str) -> ErpOrder | None:
        try:
            raw = cast("bytes | None", self.client.get(keys.erp_booked(self.prefix, name)))
        except redis.RedisError as exc:
            log.warning("booked orders unavailable: %s", type(exc).__name__)
            return None
        if raw is None:
            return None
        try:
            return ErpOrder.model_validate_json(raw)
        except ValueError:
            return None

    def keep_booked(self, order: ErpOrder) -> None:
        """Keep a submitted order's facts (a draft's may still change)."""
        if order.docstatus < 1:
            return
        facts = order.model_copy(update={"status": "", "per_billed": Decimal(0),
                                         "per_delivered": Decimal(0), "modified": None})
        try:
            self.client.set(keys.erp_booked(self.prefix, order.name),
                            facts.model_dump_json(), ex=keys.BOOKED_TTL_S, nx=True)
        except redis.RedisError as exc:
            log.warning("booked order not kept: %s", type(exc).__name__)
