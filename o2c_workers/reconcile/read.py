"""What ``o2c reconcile`` reads of both systems: never our own records.

Salesforce: Closed Won opportunities modified in the period (one SOQL query a page, the
sweep's ``Spec``), the opportunities of ERP orders not among them (``WHERE Id IN``, 200 a
query), and their product lines (``OpportunityId IN``, 200 opportunities a query). ERP: the
Sales Orders carrying a Salesforce id modified in the period (a list call a page), every
revision of every opportunity in scope and their invoices (a list call per 50), and each
live order with its item rows (one call an order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from config import Settings
from config.routes import DEFAULT_ROUTES, Route
from o2c_workers import sfid
from o2c_workers.erp.protocol import ErpAdapter
from o2c_workers.errors import O2CError
from o2c_workers.models import ErpInvoice, ErpOrder
from o2c_workers.salesforce import soql
from o2c_workers.services.orders import opportunity_of_order
from o2c_workers.sweeps.specs import Spec, won_stage

#: Ids per ``IN (...)`` query (Salesforce's URL and SOQL length stay well within limits).
IDS_PER_QUERY = 200
#: ``progress(what, done, total)`` after each page or record read.
Progress = Callable[[str, int, int], None]


class QuerySource(Protocol):
    def query_pages(self, soql: str) -> Iterator[dict[str, Any]]: ...


def opportunity_fields(settings: Settings) -> tuple[str, ...]:
    return ("Id", "AccountId", "Name", "StageName", "Amount", "CurrencyIsoCode", "CloseDate",
            "LastModifiedDate", settings.sf_field_order_number, settings.sf_field_order_status,
            settings.sf_field_invoice_status, settings.sf_field_payment_status)


def won_spec(settings: Settings) -> Spec:
    """Closed Won opportunities, whatever their written-back order number."""
    return Spec("reconcile", "Opportunity", opportunity_fields(settings),
                lambda s, routes: [f"StageName = {soql.quote(won_stage(routes))}"])


LINE_FIELDS = ("Id", "OpportunityId", "ProductCode", "Quantity", "ListPrice", "UnitPrice",
               "Discount", "TotalPrice")


def opportunity_of(order: ErpOrder) -> str | None:
    """The opportunity an order's key names; None for a key that names none."""
    try:
        return opportunity_of_order(order)
    except O2CError:
        return None


@dataclass
class Snapshot:
    """Both systems' side of every opportunity in scope, keyed by 18-character id."""

    since: float
    opportunities: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    orders: dict[str, list[ErpOrder]] = field(default_factory=dict)
    #: Live orders read in full (with their item rows), by name.
    details: dict[str, ErpOrder] = field(default_factory=dict)
    invoices: dict[str, list[ErpInvoice]] = field(default_factory=dict)
    salesforce_calls: int = 0

    @property
    def scope(self) -> list[str]:
        return sorted(set(self.opportunities) | set(self.orders))


@dataclass
class Reader:
    settings: Settings
    salesforce: QuerySource
    erp: ErpAdapter
    routes: Sequence[Route] = DEFAULT_ROUTES
    progress: Progress | None = None

    def _step(self, what: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(what, done, total)

    def read(self, since: float) -> Snapshot:
        snap = Snapshot(since)
        spec = won_spec(self.settings)
        self._opportunities(snap, spec.query(self.settings, self.routes, since=since),
                            "won opportunities")
        erp_side: set[str] = set()
        for page in self.erp.sales_orders_modified_since(since):
            erp_side.update(o for o in map(opportunity_of, page) if o)
            self._step("ERP orders", len(erp_side), len(erp_side))
        others = sorted(erp_side - set(snap.opportunities))
        for start in range(0, len(others), IDS_PER_QUERY):
            self._opportunities(snap, spec.by_ids(others[start:start + IDS_PER_QUERY]),
                                "their opportunities")
        scope = sorted(set(snap.opportunities) | erp_side)
        for order in self.erp.sales_orders_of_many(scope):
            opportunity = opportunity_of(order)
            if opportunity:
                snap.orders.setdefault(opportunity, []).append(order)
        for invoice in self.erp.sales_invoices_of_many(scope):
            if invoice.opportunity_id and sfid.is_valid(invoice.opportunity_id):
                snap.invoices.setdefault(sfid.to18(invoice.opportunity_id), []).append(invoice)
        self._lines(snap)
        live = [o for orders in snap.orders.values() for o in orders if o.live]
        for n, order in enumerate(live, start=1):
            snap.details[order.name] = self.erp.get_sales_order(order.name)
            self._step("ERP order lines", n, len(live))
        return snap

    def _opportunities(self, snap: Snapshot, query: str, what: str) -> None:
        for page in self.salesforce.query_pages(query):
            snap.salesforce_calls += 1
            for record in page.get("records") or []:
                fields = {k: v for k, v in record.items() if k != "attributes"}
                snap.opportunities[sfid.to18(str(fields["Id"]))] = fields
            self._step(what, len(snap.opportunities), int(page.get("totalSize") or 0))

    def _lines(self, snap: Snapshot) -> None:
        ids = sorted(snap.opportunities)
        for start in range(0, len(ids), IDS_PER_QUERY):
            listed = ", ".join(soql.quote(i) for i in ids[start:start + IDS_PER_QUERY])
            query = soql.select("OpportunityLineItem", LINE_FIELDS,
                                where=[f"OpportunityId IN ({listed})"])
            for page in self.salesforce.query_pages(query):
                snap.salesforce_calls += 1
                for record in page.get("records") or []:
                    fields = {k: v for k, v in record.items() if k != "attributes"}
                    snap.lines.setdefault(sfid.to18(str(fields["OpportunityId"])),
                                          []).append(fields)
            self._step("opportunity lines", min(start + IDS_PER_QUERY, len(ids)), len(ids))
