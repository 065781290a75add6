"""An ``ErpAdapter`` that asks the ERP only what the fleet does not know already.

It wraps any adapter. Master data comes from the shared cache (``cache.MasterCache``):
known items, item prices, price lists, tax rates and the account-to-customer mapping.
Only what lets an order through is cached: an unknown item, a missing price or tax rule and
a customer without a billing country are always asked for, so a refusal never comes from
the cache; a cached price that disagrees is read again (``fresh=True``) before it refuses.

The documents it reads and writes note their versions (``versions.Versions``), and the
events' documents are taken as they came when no newer version was seen. Everything else
is the wrapped adapter's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar, cast

from o2c_workers.erp import cache, documents
from o2c_workers.erp.cache import MasterCache, account_field
from o2c_workers.erp.protocol import ErpAdapter
from o2c_workers.erp.versions import Versions
from o2c_workers.errors import BusinessError
from o2c_workers.models import (
    ChangeCursor,
    ChangePage,
    CreditStatus,
    CustomerData,
    ErpCustomer,
    ErpInvoice,
    ErpOrder,
    ErpPayment,
    OrderData,
)

T = TypeVar("T")
_Doc = TypeVar("_Doc", ErpOrder, ErpInvoice, ErpPayment)


class CachedErp:
    def __init__(self, inner: ErpAdapter, masters: MasterCache, versions: Versions) -> None:
        self.inner = inner
        self.masters = masters
        self.versions = versions

    @property
    def http(self) -> Any:
        """The wrapped adapter's own HTTP client, where it has one (ERPNext's ``ErpHttp``),
        for what speaks the ERP's REST API directly."""
        return cast(Any, self.inner).http

    # --- master data -------------------------------------------------------------------

    def known_items(self, item_codes: Sequence[str]) -> set[str]:
        codes = sorted(set(item_codes))
        found, epoch = self.masters.get(cache.ITEMS, codes)
        known = {c for c in codes if found.get(c) == "1"}
        asked = [c for c in codes if c not in known]
        if asked:
            fresh = self.inner.known_items(asked)
            self.masters.fill(epoch, {c: "1" for c in fresh})
            known |= fresh
        return known

    def item_prices(self, item_codes: Sequence[str], currency: str, *,
                    fresh: bool = False) -> dict[str, Decimal]:
        codes = sorted(set(item_codes))
        fields = [f"{currency}|{c}" for c in codes]
        found, epoch = self.masters.get(cache.PRICES, fields)
        if fresh:
            found = {}
        prices = {c: Decimal(found[f]) for c, f in zip(codes, fields, strict=True) if f in found}
        asked = [c for c in codes if c not in prices]
        if asked:
            read = self.inner.item_prices(asked, currency, fresh=fresh)
            self.masters.fill(epoch, {f"{currency}|{c}": str(p) for c, p in read.items()})
            prices.update(read)
        return prices

    def tax_rate(self, country: str) -> Decimal | None:
        found, epoch = self.masters.get(cache.TAX, [country])
        if country in found:
            return Decimal(found[country])
        rate = self.inner.tax_rate(country)
        if rate is not None:
            self.masters.fill(epoch, {country: str(rate)})
        return rate

    # --- customers ---------------------------------------------------------------------

    def ensure_customer(self, customer: CustomerData) -> ErpCustomer:
        return self._customer(customer.salesforce_id,
                              lambda: self.inner.ensure_customer(customer))

    def find_customer(self, salesforce_id: str) -> ErpCustomer | None:
        try:
            return self._customer(salesforce_id, lambda: _found(
                self.inner.find_customer(salesforce_id)))
        except _NotFound:
            return None

    def update_customer(self, current: ErpCustomer, customer: CustomerData) -> ErpCustomer:
        updated = self.inner.update_customer(current, customer)
        # Raises when Redis refuses: the step is retried rather than leave the old customer.
        self.masters.invalidate(cache.CUSTOMERS, [account_field(customer.salesforce_id)])
        return updated

    def _customer(self, salesforce_id: str, read: Callable[[], ErpCustomer]) -> ErpCustomer:
        account = account_field(salesforce_id)
        found, epoch = self.masters.get(cache.CUSTOMERS, [account])
        if account in found:
            return ErpCustomer.model_validate_json(found[account])
        customer = read()
        if customer.country:
            # One without a billing country is refused at pricing: never from the cache.
            self.masters.fill(epoch, {account: customer.model_dump_json()})
        return customer

    def credit_status(self, customer: ErpCustomer) -> CreditStatus:
        return self.inner.credit_status(customer)

    # --- documents ---------------------------------------------------------------------

    def submit_sales_order(self, order: OrderData, customer: ErpCustomer, *,
                           key: str | None = None, amended_from: str | None = None) -> ErpOrder:
        return self._order(self.inner.submit_sales_order(order, customer, key=key,
                                                         amended_from=amended_from))

    def get_sales_order(self, name: str) -> ErpOrder:
        return self._order(self.inner.get_sales_order(name))

    def cancel_sales_order(self, name: str) -> ErpOrder:
        return self._seen("Sales Order", self.inner.cancel_sales_order(name))

    def booked_order(self, name: str) -> ErpOrder:
        return self.versions.booked(name) or self.get_sales_order(name)

    def find_sales_order(self, salesforce_id: str) -> ErpOrder | None:
        return self.inner.find_sales_order(salesforce_id)

    def find_sales_orders(self, opportunity_id: str) -> list[ErpOrder]:
        return [self._seen("Sales Order", o)
                for o in self.inner.find_sales_orders(opportunity_id)]

    def get_sales_invoice(self, name: str) -> ErpInvoice:
        return self._seen("Sales Invoice", self.inner.get_sales_invoice(name))

    def get_payment_entry(self, name: str) -> ErpPayment:
        return self._seen("Payment Entry", self.inner.get_payment_entry(name))

    def order_of_event(self, event: Mapping[str, Any]) -> ErpOrder | None:
        found = self._of_event(event, "Sales Order", documents.to_order)
        if found is not None:
            self.versions.keep_booked(found)
        return found

    def invoice_of_event(self, event: Mapping[str, Any]) -> ErpInvoice | None:
        return self._of_event(event, "Sales Invoice", documents.to_invoice)

    def payment_of_event(self, event: Mapping[str, Any]) -> ErpPayment | None:
        return self._of_event(event, "Payment Entry", documents.to_payment)

    def _of_event(self, event: Mapping[str, Any], doctype: str,
                  parse: Callable[[documents.Doc], _Doc]) -> _Doc | None:
        """The event's document, when it carries one not older than any version seen.

        An event taken in longer ago than half the versions' TTL (a dead letter requeued
        days later) is read again: the versions seen since may have expired."""
        doc = event.get("doc")
        if event.get("doctype") != doctype or not isinstance(doc, dict) \
                or doc.get("name") != event.get("name"):
            return None
        received_at = event.get("received_at")
        if not isinstance(received_at, int | float) \
                or time.time() - received_at > self.versions.ttl_s / 2:
            return None
        try:
            parsed = documents.read(parse, doc, doctype)
        except BusinessError:
            return None  # not a document we can read: the ERP's own is read instead
        return parsed if self.versions.note(doctype, parsed.name, parsed.modified) else None

    def _order(self, order: ErpOrder) -> ErpOrder:
        self.versions.keep_booked(order)
        return self._seen("Sales Order", order)

    def _seen(self, doctype: str, doc: _Doc) -> _Doc:
        self.versions.note(doctype, doc.name, doc.modified)
        return doc

    # --- the rest, as the wrapped adapter has it ----------------------------------------

    def check_unique_ids(self) -> None:
        self.inner.check_unique_ids()

    def changes_since(self, cursor: ChangeCursor) -> ChangePage:
        return self.inner.changes_since(cursor)

    def sales_orders_modified_since(self, since: float, *,
                                    page_length: int = 500) -> Iterator[list[ErpOrder]]:
        return self.inner.sales_orders_modified_since(since, page_length=page_length)

    def sales_orders_of_many(self, opportunity_ids: Sequence[str]) -> list[ErpOrder]:
        return self.inner.sales_orders_of_many(opportunity_ids)

    def sales_invoices_of_many(self, opportunity_ids: Sequence[str]) -> list[ErpInvoice]:
        return self.inner.sales_invoices_of_many(opportunity_ids)

    def payment_entries_of(self, invoice: ErpInvoice) -> list[ErpPayment]:
        return self.inner.payment_entries_of(invoice)

    def close(self) -> None:
        self.inner.close()


class _NotFound(Exception):
    pass


def _found(customer: ErpCustomer | None) -> ErpCustomer:
    if customer is None:
        raise _NotFound
    return customer


if TYPE_CHECKING:
    _conforms: type[ErpAdapter] = CachedErp
