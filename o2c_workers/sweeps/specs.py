"""What each sweep asks Salesforce: the object, the fields, the filter, the order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from config import Settings
from config.routes import Route
from o2c_workers.salesforce import soql

#: The route whose records the opportunity sweep looks for (its stage is the filter).
WON_ROUTE = "opportunity_won"
#: Key prefixes of the record ids a sweep can re-read, and their object types.
SOBJECT_OF_PREFIX = {"006": "Opportunity", "001": "Account"}


@dataclass(frozen=True)
class Spec:
    """One sweep: ``sobject`` records changed since the watermark that pass ``where``."""

    name: str
    sobject: str
    #: What the chain's context carries as the record (the steps re-read the rest).
    fields: tuple[str, ...]
    where: Callable[[Settings, Sequence[Route]], list[str]]

    def query(self, settings: Settings, routes: Sequence[Route], *, since: float) -> str:
        """Records modified at or after ``since``, oldest first (ties broken by Id), so a
        page's last record is how far the sweep has come."""
        return soql.select(
            self.sobject, self.fields,
            where=[*self.where(settings, routes),
                   f"LastModifiedDate >= {soql.datetime_literal(since)}"],
            order_by=("LastModifiedDate", "Id"))

    def by_ids(self, ids: Sequence[str]) -> str:
        """The current state of the records ``ids`` (a stalled transaction's re-drive)."""
        listed = ", ".join(soql.quote(i) for i in ids)
        return soql.select(self.sobject, self.fields, where=[f"Id IN ({listed})"])


def won_stage(routes: Sequence[Route]) -> str:
    for route in routes:
        if route.name == WON_ROUTE and route.stage:
            return route.stage
    raise ValueError(f"no {WON_ROUTE!r} route with a stage to sweep for")


def _won_without_order(settings: Settings, routes: Sequence[Route]) -> list[str]:
    return [f"StageName = {soql.quote(won_stage(routes))}",
            f"{soql.name(settings.sf_field_order_number)} = null"]


OPPORTUNITIES = Spec(
    "opportunities", "Opportunity",
    ("Id", "AccountId", "Name", "StageName", "Amount", "CloseDate", "LastModifiedDate"),
    _won_without_order)
ACCOUNTS = Spec("accounts", "Account", ("Id", "Name", "LastModifiedDate"),
                lambda settings, routes: [])
SPECS = {spec.sobject: spec for spec in (OPPORTUNITIES, ACCOUNTS)}


def spec_of(trace_key: str) -> Spec | None:
    """The sweep that can re-read the record a trace key names, if any."""
    sobject = SOBJECT_OF_PREFIX.get(trace_key[:3])
    return SPECS.get(sobject) if sobject else None
