"""The ``ErpAdapter`` of Frappe/ERPNext, over its REST API.

Lookups by Salesforce id use the unique custom field ``salesforce_id`` (matching the 15- and
18-character forms). Reads are retried quickly (``retry.QuickRetry``); creates go through
``idempotent.create_once``, once ``unique.UniqueIds`` has found that field unique. An
opportunity's orders are keyed per revision (``revisions.py``). Every call passes the
fleet-wide limiter inside ``ErpHttp``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import requests

from config.settings import ConfigError, Settings
from o2c_workers import sfid
from o2c_workers.erp import changes, documents, revisions
from o2c_workers.erp.documents import Doc
from o2c_workers.erp.http import ErpHttp, TokenAuth
from o2c_workers.erp.idempotent import create_once
from o2c_workers.erp.protocol import ErpAdapter
from o2c_workers.erp.retry import QuickRetry
from o2c_workers.erp.unique import UniqueIds
from o2c_workers.errors import BusinessError, InvalidPayload
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
from o2c_workers.ratelimit import Limiter, NullLimiter

T = TypeVar("T")

OUTSTANDING_METHOD = "erpnext.selling.doctype.customer.customer.get_customer_outstanding"
CANCEL_METHOD = "frappe.client.cancel"
#: How long a found selling Price List is remembered per currency, in seconds.
PRICE_LIST_TTL_S = 300.0
#: Rows a listing asks for per page, and opportunities per lookup call.
LIST_PAGE = 500
BATCH_IDS = 50


def resource(doctype: str, name: str | None = None) -> str:
    path = f"/api/resource/{quote(doctype, safe='')}"
    return path if name is None else f"{path}/{quote(name, safe='')}"


class ErpNextAdapter:
    """Customers, prices, tax, credit, sales orders, invoices and payments in ERPNext."""

    def __init__(
        self, settings: Settings, *, limiter: Limiter | NullLimiter | None = None,
        session: requests.Session | None = None, retry: QuickRetry | None = None,
        acquire_timeout_s: float = 5.0, customer_group: str = "Commercial",
        territory: str = "All Territories", company: str | None = None,
    ) -> None:
        if settings.erp_api_key is None or settings.erp_api_secret is None:
            raise ConfigError("missing required setting(s): O2C_ERP_API_KEY, O2C_ERP_API_SECRET")
        self.http = ErpHttp(
            settings.erp_base_url, TokenAuth(settings.erp_api_key, settings.erp_api_secret),
            connect_timeout_s=settings.erp_connect_timeout_s,
            read_timeout_s=settings.erp_timeout_s, limiter=limiter,
            acquire_timeout_s=acquire_timeout_s, session=session)
        self.retry = retry or QuickRetry()
        self.zone = settings.erp_zone
        self.customer_group = customer_group
        self.territory = territory
        #: The company whose credit limit counts; None takes the lowest limit set.
        self.company = company
        #: Currency → (monotonic expiry, Price List name): master data, read once a while.
        self._price_lists: dict[str, tuple[float, str]] = {}
        self.unique_ids = UniqueIds(lambda filters, fields: self._list(
            "Custom Field", filters, fields), enabled=settings.erp_check_unique_ids)

    # --- customers -----------------------------------------------------------------------

    def ensure_customer(self, customer: CustomerData) -> ErpCustomer:
        """Look the customer up (the common case: it exists), else create it once."""
        found = self.find_customer(customer.salesforce_id)
        if found is not None:
            return found
        body = documents.customer_body(customer, group=self.customer_group,
                                       territory=self.territory)
        return self._create("Customer", body, customer.salesforce_id,
                            lambda: self.find_customer(customer.salesforce_id),
                            documents.to_customer)

    def update_customer(self, current: ErpCustomer, customer: CustomerData) -> ErpCustomer:
        changes = documents.customer_changes(self._get("Customer", current.name), customer)
        if not changes:
            return current
        # A PUT of the same fields is idempotent: retrying after a lost answer is safe.
        for attempt in self.retry.retrying():
            with attempt:
                answer = self.http.call("PUT", resource("Customer", current.name), body=changes)
        data = answer.get("data") if isinstance(answer, dict) else None
        return documents.read(documents.to_customer, data or {}, "Customer")

    def find_customer(self, salesforce_id: str) -> ErpCustomer | None:
        return self._find("Customer", salesforce_id, documents.CUSTOMER_FIELDS,
                          documents.to_customer)

    def credit_status(self, customer: ErpCustomer) -> CreditStatus:
        doc = self._get("Customer", customer.name)
        params: dict[str, Any] = {"customer": customer.name}
        if self.company:
            params["company"] = self.company
        answer = self._read(f"/api/method/{OUTSTANDING_METHOD}", params)
        return CreditStatus(frozen=bool(int(doc.get("is_frozen") or 0)),
                            limit=self._credit_limit(doc.get("credit_limits") or []),
                            outstanding=documents.money(answer.get("message")))

    def _credit_limit(self, rows: list[Doc]) -> Decimal | None:
        limits = [documents.money(r.get("credit_limit")) for r in rows
                  if self.company is None or r.get("company") == self.company]
        limits = [limit for limit in limits if limit > 0]
        return min(limits) if limits else None

    # --- items, prices, tax --------------------------------------------------------------

    def known_items(self, item_codes: Sequence[str]) -> set[str]:
        if not item_codes:
            return set()
        rows = self._list("Item", [["item_code", "in", sorted(set(item_codes))],
                                   ["disabled", "=", 0]], ["item_code"])
        return {str(row["item_code"]) for row in rows}

    def item_prices(self, item_codes: Sequence[str], currency: str, *,
                    fresh: bool = False) -> dict[str, Decimal]:
        price_list = self.price_list(currency, fresh=fresh)
        if price_list is None or not item_codes:
            return {}
        rows = self._list("Item Price", [["price_list", "=", price_list],
                                         ["item_code", "in", sorted(set(item_codes))]],
                          ["item_code", "price_list_rate"])
        return {str(r["item_code"]): documents.money(r["price_list_rate"]) for r in rows}

    def price_list(self, currency: str, *, fresh: bool = False) -> str | None:
        """The enabled selling Price List in ``currency`` (the first by name)."""
        cached = self._price_lists.get(currency)
        if cached is not None and cached[0] > time.monotonic() and not fresh:
            return cached[1]
        rows = self._list("Price List", [["currency", "=", currency], ["selling", "=", 1],
                                         ["enabled", "=", 1]], ["name"],
                          order_by="name asc", limit=1)
        if not rows:
            return None
        name = str(rows[0]["name"])
        self._price_lists[currency] = (time.monotonic() + PRICE_LIST_TTL_S, name)
        return name

    def tax_rate(self, country: str) -> Decimal | None:
        """The summed rates of the template of the best Tax Rule (priority, then newest)."""
        rules = self._list("Tax Rule", [["billing_country", "=", country],
                                        ["tax_type", "=", "Sales"]], ["sales_tax_template"],
                           order_by="priority desc, creation desc", limit=1)
        if not rules:
            return None
        template = self._get("Sales Taxes and Charges Template",
                             str(rules[0]["sales_tax_template"]))
        rates = [Decimal(str(row.get("rate") or 0)) for row in template.get("taxes") or []]
        return sum(rates, Decimal(0))

    # --- sales orders, invoices, payments ------------------------------------------------

    def submit_sales_order(self, order: OrderData, customer: ErpCustomer, *,
                           key: str | None = None, amended_from: str | None = None) -> ErpOrder:
        """Create the order submitted (``docstatus: 1``), exactly once per key (the
        opportunity id, or an amendment's revision key); the answer has its item rows."""
        key = key or order.opportunity_id
        body = documents.order_body(order, customer, price_list=self.price_list(order.currency),
                                    today=dt.date.today(), key=key, amended_from=amended_from)
        return self._create("Sales Order", body, key, lambda: self._order_by_key(key),
                            documents.to_order)

    def find_sales_order(self, salesforce_id: str) -> ErpOrder | None:
        return self._find("Sales Order", salesforce_id, documents.ORDER_FIELDS,
                          documents.to_order)

    def find_sales_orders(self, opportunity_id: str) -> list[ErpOrder]:
        """Every order of the opportunity, each revision, lowest first (no item rows)."""
        ids, amendments = revisions.keys_of(opportunity_id)
        params: dict[str, Any] = {
            "fields": json.dumps(list(documents.ORDER_FIELDS)), "limit_page_length": "0",
            "or_filters": json.dumps([["salesforce_id", "in", ids],
                                      ["salesforce_id", "like", amendments]])}
        data = self._read(resource("Sales Order"), params).get("data")
        rows = [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []
        found = [documents.read(documents.to_order, row, "Sales Order") for row in rows]
        return sorted((o for o in found if _of(o, opportunity_id)),
                      key=lambda o: revisions.parse(o.salesforce_id))

    def get_sales_order(self, name: str) -> ErpOrder:
        return documents.read(documents.to_order, self._get("Sales Order", name), "Sales Order")

    def cancel_sales_order(self, name: str) -> ErpOrder:
        """Cancel a submitted order (docstatus 2); one cancelled already is answered as is,
        so a retry after a lost answer is safe. A refusal (invoiced, delivered, closed) is
        the ERP's BusinessError."""
        for attempt in self.retry.retrying():
            with attempt:
                try:
                    answer = self.http.call("POST", f"/api/method/{CANCEL_METHOD}",
                                            body={"doctype": "Sales Order", "name": name})
                except BusinessError:
                    current = self.get_sales_order(name)
                    if current.cancelled:
                        return current
                    raise
                doc = answer.get("message") if isinstance(answer, dict) else None
                return documents.read(documents.to_order, doc, "Sales Order")
        raise AssertionError("tenacity re-raises the last error")  # pragma: no cover

    def check_unique_ids(self) -> None:
        """Raise the ``erp_configuration`` refusal unless ``salesforce_id`` is unique on
        every DocType the adapter creates (asks the ERP now)."""
        self.unique_ids.check()

    def _order_by_key(self, key: str) -> ErpOrder | None:
        """The order holding ``key``, read in full (a create's lookup)."""
        found = self.find_sales_order(key)
        return None if found is None else self.get_sales_order(found.name)

    def booked_order(self, name: str) -> ErpOrder:
        return self.get_sales_order(name)

    def order_of_event(self, event: Mapping[str, Any]) -> ErpOrder | None:
        """None: with no record of the versions seen, every event's document is read."""
        return None

    def invoice_of_event(self, event: Mapping[str, Any]) -> ErpInvoice | None:
        return None

    def payment_of_event(self, event: Mapping[str, Any]) -> ErpPayment | None:
        return None

    def get_sales_invoice(self, name: str) -> ErpInvoice:
        return documents.read(documents.to_invoice, self._get("Sales Invoice", name),
                              "Sales Invoice")

    def get_payment_entry(self, name: str) -> ErpPayment:
        return documents.read(documents.to_payment, self._get("Payment Entry", name),
                              "Payment Entry")

    def changes_since(self, cursor: ChangeCursor) -> ChangePage:
        """One page of the change feed (``changes.py``): one list call."""
        return changes.page(cursor, zone=self.zone, read=self._rows)

    # --- listings (``o2c reconcile``) ---------------------------------------------------

    def sales_orders_modified_since(self, since: float, *,
                                    page_length: int = LIST_PAGE) -> Iterator[list[ErpOrder]]:
        """Orders carrying a Salesforce id modified at or after ``since``, page by page
        (``modified`` is in the site's time zone, ``O2C_ERP_TIME_ZONE``)."""
        filters = [["salesforce_id", "is", "set"],
                   ["modified", ">=", changes.to_stamp(since, self.zone)]]
        start = 0
        while True:
            rows = self._list("Sales Order", filters, documents.ORDER_FIELDS,
                              order_by="modified asc, name asc", limit=page_length,
                              start=start)
            if rows:
                yield [documents.read(documents.to_order, row, "Sales Order") for row in rows]
            if len(rows) < page_length:
                return
            start += page_length

    def sales_orders_of_many(self, opportunity_ids: Sequence[str]) -> list[ErpOrder]:
        """Every revision of these opportunities' orders, ``BATCH_IDS`` opportunities a
        call (their ids in both forms, or their amendments' keys)."""
        found: list[ErpOrder] = []
        ids = sorted({sfid.to18(i) for i in opportunity_ids})
        for batch in _batches(ids, BATCH_IDS):
            conditions: list[list[Any]] = [
                ["salesforce_id", "in", sorted({f for i in batch for f in _id_forms(i)})]]
            conditions += [["salesforce_id", "like", f"{i}-%"] for i in batch]
            params: dict[str, Any] = {
                "fields": json.dumps(list(documents.ORDER_FIELDS)), "limit_page_length": "0",
                "or_filters": json.dumps(conditions)}
            data = self._read(resource("Sales Order"), params).get("data")
            rows = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
            orders = [documents.read(documents.to_order, row, "Sales Order") for row in rows]
            wanted = set(batch)
            found += [o for o in orders if _opportunity(o) in wanted]
        return found

    def sales_invoices_of_many(self, opportunity_ids: Sequence[str]) -> list[ErpInvoice]:
        """Invoices whose ``po_no`` (copied from the order) names one of the opportunities."""
        found: list[ErpInvoice] = []
        ids = sorted({sfid.to18(i) for i in opportunity_ids})
        for batch in _batches(ids, BATCH_IDS):
            forms = sorted({f for i in batch for f in _id_forms(i)})
            rows = self._list("Sales Invoice", [["po_no", "in", forms]],
                              documents.INVOICE_FIELDS, order_by="creation asc")
            found += [documents.read(documents.to_invoice, row, "Sales Invoice")
                      for row in rows]
        return found

    def payment_entries_of(self, invoice: ErpInvoice) -> list[ErpPayment]:
        """The customer's submitted receipts, read in full, that allocate to ``invoice``
        (the allocations are child rows a list call does not return)."""
        if not invoice.customer:
            return []
        rows = self._list("Payment Entry", [["party", "=", invoice.customer],
                                            ["docstatus", "=", 1]], ["name"],
                          order_by="creation asc")
        payments = [self.get_payment_entry(str(row["name"])) for row in rows]
        return [p for p in payments if invoice.name in p.allocations]

    def close(self) -> None:
        self.http.close()

    # --- plumbing ------------------------------------------------------------------------

    def _read(self, path: str, params: dict[str, Any] | None = None) -> Any:
        for attempt in self.retry.retrying():
            with attempt:
                return self.http.call("GET", path, params=params)
        raise AssertionError("tenacity re-raises the last error")  # pragma: no cover

    def _get(self, doctype: str, name: str) -> Doc:
        data = self._read(resource(doctype, name)).get("data")
        return data if isinstance(data, dict) else {}

    def _rows(self, doctype: str, params: dict[str, Any]) -> list[Doc]:
        data = self._read(resource(doctype), params).get("data")
        return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []

    def _list(self, doctype: str, filters: list[list[Any]], fields: Sequence[str], *,
              order_by: str | None = None, limit: int = 0, start: int = 0) -> list[Doc]:
        params: dict[str, Any] = {"filters": json.dumps(filters),
                                  "fields": json.dumps(list(fields)),
                                  "limit_page_length": str(limit)}
        if start:
            params["limit_start"] = str(start)
        if order_by:
            params["order_by"] = order_by
        return self._rows(doctype, params)

    def _find(self, doctype: str, salesforce_id: str, fields: Sequence[str],
              parse: Callable[[Doc], T]) -> T | None:
        rows = self._list(doctype, [["salesforce_id", "in", _id_forms(salesforce_id)]], fields,
                          order_by="creation asc", limit=1)
        return documents.read(parse, rows[0], doctype) if rows else None

    def _create(self, doctype: str, body: Doc, salesforce_id: str,
                lookup: Callable[[], T | None], parse: Callable[[Doc], T]) -> T:
        self.unique_ids.require(doctype)
        return create_once(self.http, self.retry, path=resource(doctype), payload=body,
                           salesforce_id=salesforce_id, lookup=lookup,
                           parse=lambda doc: documents.read(parse, doc, doctype))


def _of(order: ErpOrder, opportunity_id: str) -> bool:
    """Whether an order found by pattern is one of this opportunity's (ids compared case by
    case, as the database's collation may not)."""
    try:
        return revisions.parse(order.salesforce_id).opportunity_id == sfid.to18(opportunity_id)
    except InvalidPayload:
        return False


def _opportunity(order: ErpOrder) -> str | None:
    try:
        return revisions.parse(order.salesforce_id).opportunity_id
    except InvalidPayload:
        return None


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _id_forms(salesforce_id: str) -> list[str]:
    """The id as given, and its other form (15 ↔ 18 characters) when it is a valid id."""
    forms = {salesforce_id}
    if sfid.is_valid(salesforce_id):
        forms |= {sfid.to15(salesforce_id), sfid.to18(salesforce_id)}
    return sorted(forms)


if TYPE_CHECKING:
    _conforms: type[ErpAdapter] = ErpNextAdapter
