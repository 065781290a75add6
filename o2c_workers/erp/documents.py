"""ERPNext documents ↔ canonical models: the request bodies we send, the answers we read.

Money comes in as ``Decimal`` (the client parses JSON with ``parse_float=Decimal``) and goes
out as an exact decimal string; a float is refused on both sides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import ValidationError

from o2c_workers.erp import mapping
from o2c_workers.errors import BusinessError
from o2c_workers.models import (
    CustomerData,
    ErpCustomer,
    ErpInvoice,
    ErpOrder,
    ErpOrderLine,
    ErpPayment,
    OrderData,
    OrderLine,
    cents,
)

T = TypeVar("T")
Doc = dict[str, Any]

#: Fields read when a Customer is looked up.
CUSTOMER_FIELDS = ("name", "salesforce_id", "is_frozen", "country")
#: Fields read when a Sales Order is looked up (all top-level: one list call).
ORDER_FIELDS = ("name", "salesforce_id", "status", "docstatus", "currency", "net_total",
                "total_taxes_and_charges", "grand_total", "customer", "per_billed",
                "per_delivered", "amended_from", "modified")
#: Fields read when Sales Invoices are listed (top-level: the order is in the item rows,
#: the opportunity in ``po_no``).
INVOICE_FIELDS = ("name", "salesforce_id", "status", "docstatus", "currency", "net_total",
                  "grand_total", "outstanding_amount", "po_no", "customer", "modified")


def money(value: Any) -> Decimal:
    """An amount of an ERP answer, to the cent; absent counts as zero."""
    if value is None or value == "":
        return Decimal("0.00")
    if isinstance(value, float | bool):
        raise TypeError(f"money must not be a {type(value).__name__}: {value!r}")
    try:
        return cents(value if isinstance(value, Decimal) else Decimal(str(value)))
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None


def number(value: Any) -> Decimal:
    """A quantity, rate or percentage of an ERP answer, exactly; absent counts as zero."""
    if value is None or value == "":
        return Decimal(0)
    if isinstance(value, float | bool):
        raise TypeError(f"a number must not be a {type(value).__name__}: {value!r}")
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def customer_body(customer: CustomerData, *, group: str, territory: str) -> Doc:
    body: Doc = {
        "customer_name": customer.name, "customer_type": "Company",
        "customer_group": group, "territory": territory,
        "salesforce_id": customer.salesforce_id, "default_currency": customer.currency,
    }
    if customer.country:
        body["country"] = customer.country
    return body


def customer_changes(doc: Doc, customer: CustomerData) -> Doc:
    """The fields of an ERP customer that differ from its account (the currency stays: the
    ERP refuses to change it once there are entries)."""
    wanted: Doc = {"customer_name": customer.name}
    if customer.country:
        wanted["country"] = customer.country
    return {field: value for field, value in wanted.items() if doc.get(field) != value}


def order_body(order: OrderData, customer: ErpCustomer, *, price_list: str | None,
               today: dt.date, key: str | None = None, amended_from: str | None = None) -> Doc:
    """A submitted Sales Order: ``rate`` is the line's net rate; ``po_no`` carries the
    opportunity id, which ERPNext copies onto the invoice (the invoice's trace key).
    ``key`` is its ``salesforce_id`` (the opportunity id unless it is an amendment, which
    names the cancelled order it follows in ``amended_from``)."""
    delivery = max(order.close_date or today, today)
    body: Doc = {
        "customer": customer.name, "salesforce_id": key or order.opportunity_id,
        "po_no": order.opportunity_id, "title": order.name,
        "currency": order.currency, "transaction_date": today, "delivery_date": delivery,
        "docstatus": 1,
        "items": [{
            "item_code": line.item_code, "qty": line.quantity, "rate": line.net_rate,
            "price_list_rate": line.list_price, "discount_percentage": discount_of(line),
            "delivery_date": delivery,
        } for line in order.lines],
    }
    if price_list:
        body["selling_price_list"] = price_list
    if amended_from:
        body["amended_from"] = amended_from
    return body


def discount_of(line: OrderLine) -> Decimal:
    """The line's discount as ERPNext applies it: off the price list rate.

    ERPNext derives ``rate`` from ``price_list_rate`` less ``discount_percentage``; a
    negotiated Salesforce sales price below the list price is sent as the discount it
    amounts to, so that the ERP's rate is the line's net rate to the cent.
    """
    if line.unit_price == line.list_price:
        return line.discount_percent
    return line.effective_discount_percent


def to_customer(doc: Doc) -> ErpCustomer:
    return ErpCustomer(name=str(doc["name"]), salesforce_id=str(doc.get("salesforce_id") or ""),
                       frozen=bool(int(doc.get("is_frozen") or 0)),
                       country=doc.get("country") or None)


def to_order(doc: Doc) -> ErpOrder:
    """An order from its document (with its item rows) or from a list row (without)."""
    return ErpOrder(
        name=str(doc["name"]), salesforce_id=str(doc.get("salesforce_id") or ""),
        status=str(doc.get("status") or ""), docstatus=int(doc.get("docstatus") or 0),
        currency=str(doc.get("currency") or ""), net_total=money(doc.get("net_total")),
        total_taxes=money(doc.get("total_taxes_and_charges")),
        grand_total=money(doc.get("grand_total")), customer=doc.get("customer") or None,
        per_billed=number(doc.get("per_billed")), per_delivered=number(doc.get("per_delivered")),
        amended_from=doc.get("amended_from") or None,
        lines=tuple(to_order_line(row) for row in doc.get("items") or []),
        modified=_stamp(doc.get("modified")))


def to_order_line(row: Doc) -> ErpOrderLine:
    return ErpOrderLine(
        item_code=str(row["item_code"]), qty=number(row.get("qty")),
        rate=number(row.get("rate")), price_list_rate=number(row.get("price_list_rate")),
        discount_percentage=number(row.get("discount_percentage")),
        amount=money(row.get("amount")))


def to_invoice(doc: Doc) -> ErpInvoice:
    """The order comes from a top-level ``sales_order``, else from the item rows."""
    orders = [row.get("sales_order") for row in doc.get("items") or []]
    sales_order = doc.get("sales_order") or next((o for o in orders if o), None)
    return ErpInvoice(
        name=str(doc["name"]), sales_order=sales_order,
        salesforce_id=doc.get("salesforce_id") or None, status=str(doc.get("status") or ""),
        currency=str(doc.get("currency") or ""), net_total=money(doc.get("net_total")),
        grand_total=money(doc.get("grand_total")),
        outstanding=money(doc.get("outstanding_amount")),
        docstatus=int(doc["docstatus"]) if doc.get("docstatus") is not None else 1,
        opportunity_id=doc.get("po_no") or None, customer=doc.get("customer") or None,
        modified=_stamp(doc.get("modified")))


def to_payment(doc: Doc) -> ErpPayment:
    """Allocations per Sales Invoice, summed over the ``references`` rows."""
    allocations: dict[str, Decimal] = {}
    for ref in doc.get("references") or []:
        if ref.get("reference_doctype", "Sales Invoice") == "Sales Invoice":
            name = str(ref["reference_name"])
            allocations[name] = allocations.get(name, Decimal("0.00")) + money(
                ref.get("allocated_amount"))
    currency = doc.get("paid_from_account_currency") or doc.get("paid_to_account_currency") \
        or doc.get("currency") or ""
    return ErpPayment(name=str(doc["name"]), salesforce_id=doc.get("salesforce_id") or None,
                      currency=str(currency), paid_amount=money(doc.get("paid_amount")),
                      allocations=allocations, modified=_stamp(doc.get("modified")))


def _stamp(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


#: What an event's task needs of its document (``event_doc``): the fields the parsers above
#: read, so that names, addresses and contacts never travel in the queue.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "Sales Order": (*ORDER_FIELDS, "doctype"),
    "Sales Invoice": (*INVOICE_FIELDS, "doctype", "sales_order"),
    "Payment Entry": ("name", "doctype", "salesforce_id", "docstatus", "modified",
                      "paid_amount", "paid_from_account_currency", "paid_to_account_currency",
                      "currency"),
}
EVENT_ROW_FIELDS: dict[str, tuple[str, ...]] = {
    "items": ("item_code", "qty", "rate", "price_list_rate", "discount_percentage", "amount",
              "sales_order"),
    "references": ("reference_doctype", "reference_name", "allocated_amount"),
}


def event_doc(doctype: str, doc: Any) -> Doc | None:
    """The part of a webhook's ``doc`` its task reads, or None when the event carries no
    document of a routed DocType (or one without ``modified``)."""
    fields = EVENT_FIELDS.get(doctype)
    if fields is None or not isinstance(doc, dict) or not doc.get("modified"):
        return None
    kept: Doc = {f: _exact(doc[f]) for f in fields if f in doc}
    for table, columns in EVENT_ROW_FIELDS.items():
        rows = doc.get(table)
        if isinstance(rows, list):
            kept[table] = [{c: _exact(row[c]) for c in columns if c in row}
                           for row in rows if isinstance(row, dict)]
    return kept


def _exact(value: Any) -> Any:
    """A JSON number the receiver parsed as a float, as the decimal text it was sent as
    (``repr`` is the shortest text that reads back as the same float: ``118.5``); money is
    never carried as a float."""
    return repr(value) if isinstance(value, float) else value


def read(parse: Callable[[Doc], T], doc: Any, what: str) -> T:
    """``parse(doc)``, or a BusinessError for the integration team if it cannot be read."""
    try:
        if not isinstance(doc, dict):
            raise TypeError(f"expected an object, got {type(doc).__name__}")
        return parse(doc)
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        category = mapping.ERP_VALIDATION
        raise BusinessError(f"unreadable ERP {what}: {exc}", reason="unreadable_document",
                            category=category) from None
