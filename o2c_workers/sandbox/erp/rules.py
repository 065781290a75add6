"""Business validation: what the simulated ERPNext refuses, with which status and message.

Every refusal is a Frappe error answer (see ``errors.py``); the message texts are stable so
that the ERP adapter can map them. ``{x}`` marks a value filled in. Amounts in messages are
plain decimals (``1234.50``).

Rates keep ``rate_precision`` places (``ErpConfig``; stock ERPNext keeps 2), amounts are
rounded to the cent. Each rule: status, exc_type, message.

* missing field: 417 ``MandatoryError``, ``Error: Value missing for {DocType}: {Field}``
* unknown link: 417 ``LinkValidationError``, ``Could not find {Customer|Price List|...}: {x}``
* unknown item: 417 ``LinkValidationError``, ``Could not find Row #{i}: Item Code: {code}``
* bad quantity: 417 ``ValidationError``, ``Row #{i}: Quantity must be greater than zero``
* no price list for the currency: 417 ``ValidationError``,
  ``Price List not found for currency {cur}``
* price list in another currency: 417 ``ValidationError``,
  ``Price List {pl} currency {c} does not match order currency {cur}``
* no item price: 417 ``ValidationError``,
  ``Item Price not found for Row #{i}: Item Code {code} in Price List {pl}``
* price mismatch: 417 ``ValidationError``, ``Price mismatch in Row #{i}: Item Code {code}:
  rate {rate} differs from price list rate {plr} less {disc}% discount = {expected}``
  (``price_list_rate`` always comes from the Item Price, never from the request)
* frozen customer (on submit): 417 ``PartyFrozen``, ``Customer {customer} is frozen``
* tax configuration (on submit): 417 ``ValidationError``,
  ``Tax configuration missing: no Tax Rule for billing country {country}`` or
  ``Tax configuration missing: Customer {customer} has no billing country``
* credit limit (Sales Order submit): 417 ``ValidationError``,
  ``Credit limit has been crossed for customer {customer} ({outstanding}/{limit})``
  where outstanding includes this order
* over-allocation: 417 ``ValidationError``,
  ``Row #{i}: Allocated Amount cannot be greater than outstanding amount.``
* duplicate ``salesforce_id``: 409 ``DuplicateEntryError``,
  ``{DocType} with salesforce_id {id} already exists: {name}`` (a real ERPNext unique
  custom field answers 417 ``UniqueValidationError`` "Salesforce ID must be unique": an
  adapter should treat both as a duplicate and look the record up)
* edit after submit: 417 ``UpdateAfterSubmitError``,
  ``Not allowed to change {Field} after submission``
* docstatus change other than 0 → 1: 417 ``DocstatusTransitionError``,
  ``Cannot change docstatus from {a} to {b}``

Simplification: ERPNext finds the billing country through the customer's billing Address;
here it is the Customer's own ``country`` field. Submit checks run in the order frozen, tax,
credit, and only after the unique ``salesforce_id`` check, as ERPNext's ``on_submit`` runs
after the row is inserted.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from o2c_workers.sandbox.erp import masters
from o2c_workers.sandbox.erp.documents import Doc, DocumentStore, meta_of
from o2c_workers.sandbox.erp.errors import CENT, money, number, validation
from o2c_workers.sandbox.world import ErpSeed

HUNDRED = Decimal(100)


def prepare(store: DocumentStore, seed: ErpSeed, doc: Doc, *, is_new: bool,
            rate_places: Decimal = CENT) -> None:
    """Validate ``doc`` and fill in what ERPNext computes (defaults, rates, totals)."""
    meta = meta_of(doc["doctype"])
    for fieldname in meta.mandatory:
        if doc.get(fieldname) in (None, "", []):
            label = fieldname.replace("_", " ").title()
            raise validation(f"Error: Value missing for {meta.name}: {label}", "MandatoryError")
    for fieldname in meta.child_tables:
        rows = doc.get(fieldname)
        if rows is not None and (not isinstance(rows, list)
                                 or not all(isinstance(r, dict) for r in rows)):
            raise validation(f"{fieldname} must be a list of rows")
    match meta.name:
        case "Customer":
            masters.prepare_customer(doc, seed, is_new=is_new)
        case "Item":
            masters.prepare_item(doc)
        case "Price List":
            masters.prepare_price_list(doc)
        case "Item Price":
            masters.prepare_item_price(store, doc)
        case "Sales Taxes and Charges Template":
            masters.prepare_tax_template(doc, seed)
        case "Tax Rule":
            masters.prepare_tax_rule(store, doc, seed)
        case "Sales Order" | "Sales Invoice":
            prepare_sales_doc(store, seed, doc, rate_places)
        case "Payment Entry":
            prepare_payment(store, seed, doc)


def prepare_sales_doc(store: DocumentStore, seed: ErpSeed, doc: Doc,
                      rate_places: Decimal = CENT) -> None:
    customer = masters.link(store, "Customer", doc["customer"], "Customer")
    today = dt.date.today().isoformat()
    doc["customer_name"] = customer.get("customer_name")
    doc.setdefault("company", seed.company)
    doc["currency"] = str(doc.get("currency") or customer.get("default_currency")
                          or seed.company_currency).upper()
    doc["selling_price_list"] = _price_list(store, doc)
    doc.update(price_list_currency=doc["currency"], conversion_rate=1, plc_conversion_rate=1)
    if doc["doctype"] == "Sales Order":
        doc.setdefault("transaction_date", today)
        doc.setdefault("delivery_date", doc["transaction_date"])
        doc.setdefault("order_type", "Sales")
    else:
        doc.setdefault("posting_date", today)
        doc.setdefault("due_date", doc["posting_date"])
    for idx, row in enumerate(doc["items"], start=1):
        _price_row(store, doc, idx, row, rate_places)
    template = _template(store, doc, customer)
    doc["taxes_and_charges"] = template["name"] if template else None
    apply_totals(doc, template)


def _price_list(store: DocumentStore, doc: Doc) -> str:
    currency = doc["currency"]
    name = doc.get("selling_price_list")
    if name in (None, ""):
        name = masters.price_list_name(currency)
        if not store.exists("Price List", name):
            raise validation(f"Price List not found for currency {currency}")
    price_list = masters.link(store, "Price List", name, "Price List")
    if price_list["currency"] != currency:
        raise validation(f"Price List {name} currency {price_list['currency']} does not match "
                         f"order currency {currency}")
    return str(name)


def _plain(rate: Decimal) -> str:
    """A rate as ERPNext shows it: the cents, and more places only when it has them."""
    cents = rate.quantize(CENT, ROUND_HALF_UP)
    return str(cents) if cents == rate else str(rate.normalize())


def _price_row(store: DocumentStore, doc: Doc, idx: int, row: dict[str, Any],
               rate_places: Decimal) -> None:
    code = row.get("item_code")
    if code in (None, "") or not store.exists("Item", str(code)):
        raise validation(f"Could not find Row #{idx}: Item Code: {code}", "LinkValidationError")
    item = store.get("Item", str(code))
    qty = number(row.get("qty", 1), "quantity")
    if qty <= 0:
        raise validation(f"Row #{idx}: Quantity must be greater than zero")
    price_list = doc["selling_price_list"]
    price = masters.item_price(store, str(code), price_list)
    if price is None:
        raise validation(f"Item Price not found for Row #{idx}: Item Code {code} in "
                         f"Price List {price_list}")
    list_rate = money(price["price_list_rate"])
    discount = number(row.get("discount_percentage") or 0, "discount percentage")
    if not 0 <= discount <= HUNDRED:
        raise validation(f"Row #{idx}: Discount must be between 0 and 100")
    expected = (list_rate * (HUNDRED - discount) / HUNDRED).quantize(rate_places, ROUND_HALF_UP)
    rate = expected if row.get("rate") in (None, "") else number(row["rate"], "rate").quantize(
        rate_places, ROUND_HALF_UP)
    if rate != expected:
        raise validation(f"Price mismatch in Row #{idx}: Item Code {code}: rate "
                         f"{_plain(rate)} differs from price list rate {list_rate} less "
                         f"{discount}% discount = {_plain(expected)}")
    amount = money(rate * qty)
    row.update(item_name=item.get("item_name"), uom=row.get("uom") or item.get("stock_uom"),
               stock_uom=item.get("stock_uom"), conversion_factor=1, qty=qty,
               price_list_rate=list_rate, discount_percentage=discount,
               discount_amount=list_rate - rate, rate=rate, amount=amount, net_rate=rate,
               net_amount=amount, base_rate=rate, base_amount=amount)
    if doc["doctype"] == "Sales Order":
        row.setdefault("delivery_date", doc["delivery_date"])


def _template(store: DocumentStore, doc: Doc, customer: Doc) -> Doc | None:
    if doc.get("taxes_and_charges"):
        return masters.link(store, "Sales Taxes and Charges Template",
                            doc["taxes_and_charges"], "Sales Taxes and Charges Template")
    return masters.tax_template_for(store, customer.get("country"))


def apply_totals(doc: Doc, template: Doc | None) -> None:
    """Net total, one tax row per template row on the net total, grand total (to the cent)."""
    net_total = money(sum((money(r["amount"]) for r in doc["items"]), Decimal(0)))
    running = net_total
    taxes = []
    for tax in (template or {}).get("taxes", []):
        amount = money(net_total * number(tax["rate"], "tax rate") / HUNDRED)
        running += amount
        taxes.append({"charge_type": "On Net Total", "account_head": tax["account_head"],
                      "description": tax["description"], "rate": tax["rate"],
                      "tax_amount": amount, "total": running, "base_tax_amount": amount})
    doc["taxes"] = taxes
    total_qty = sum((number(r["qty"], "quantity") for r in doc["items"]), Decimal(0))
    doc.update(total_qty=total_qty, total=net_total, net_total=net_total,
               base_net_total=net_total, total_taxes_and_charges=running - net_total,
               grand_total=running, base_grand_total=running, rounded_total=running,
               disable_rounded_total=1)


def prepare_payment(store: DocumentStore, seed: ErpSeed, doc: Doc) -> None:
    doc.setdefault("payment_type", "Receive")
    doc.setdefault("party_type", "Customer")
    party = masters.link(store, doc["party_type"], doc["party"], doc["party_type"])
    paid = money(doc["paid_amount"])
    if paid <= 0:
        raise validation("Paid Amount must be greater than zero")
    abbr = masters.abbr(seed.company)
    doc.setdefault("company", seed.company)
    doc.setdefault("posting_date", dt.date.today().isoformat())
    doc.setdefault("mode_of_payment", "Wire Transfer")
    doc.setdefault("paid_from", f"Debtors - {abbr}")
    doc.setdefault("paid_to", f"Bank - {abbr}")
    doc.update(party_name=party.get("customer_name"), paid_amount=paid, received_amount=paid,
               base_paid_amount=paid, source_exchange_rate=1, target_exchange_rate=1)
    allocated = Decimal(0)
    for idx, ref in enumerate(doc.get("references") or [], start=1):
        ref.setdefault("reference_doctype", "Sales Invoice")
        invoice = masters.link(store, ref["reference_doctype"], ref.get("reference_name"),
                               ref["reference_doctype"])
        ref["allocated_amount"] = money(ref.get("allocated_amount") or 0)
        ref.update(total_amount=invoice.get("grand_total"),
                   outstanding_amount=invoice.get("outstanding_amount"),
                   due_date=invoice.get("due_date"))
        allocated += ref["allocated_amount"]
        if ref["allocated_amount"] > money(invoice.get("outstanding_amount") or 0):
            raise validation(f"Row #{idx}: Allocated Amount cannot be greater than "
                             "outstanding amount.")
    doc.update(total_allocated_amount=allocated, unallocated_amount=paid - allocated)
    if allocated > paid:
        raise validation("Total allocated amount cannot be greater than paid amount")


def check_submit(store: DocumentStore, doc: Doc) -> None:
    """The checks ERPNext runs when a Sales Order or Sales Invoice is submitted."""
    if doc["doctype"] not in ("Sales Order", "Sales Invoice"):
        return
    customer = masters.link(store, "Customer", doc["customer"], "Customer")
    if int(customer.get("is_frozen") or 0):
        raise validation(f"Customer {customer['name']} is frozen", "PartyFrozen")
    if not doc.get("taxes_and_charges"):
        country = customer.get("country")
        if not country:
            raise validation(f"Tax configuration missing: Customer {customer['name']} has no "
                             "billing country")
        raise validation(f"Tax configuration missing: no Tax Rule for billing country {country}")
    if doc["doctype"] != "Sales Order":
        return
    limit = masters.credit_limit(customer, doc["company"])
    if not limit:
        return
    total = outstanding(store, customer["name"], doc["company"], exclude=doc.get("name"))
    total += money(doc["grand_total"])
    if total > limit:
        raise validation(f"Credit limit has been crossed for customer {customer['name']} "
                         f"({total}/{limit})")


def outstanding(store: DocumentStore, customer: str, company: str | None, *,
                exclude: str | None = None) -> Decimal:
    """Unbilled submitted orders plus unpaid submitted invoices, as ERPNext counts them."""
    total = Decimal(0)
    for order in store.all("Sales Order"):
        if _counts(order, customer, company) and order["name"] != exclude:
            unbilled = HUNDRED - number(order.get("per_billed") or 0, "per_billed")
            total += money(order["grand_total"]) * unbilled / HUNDRED
    for invoice in store.all("Sales Invoice"):
        if _counts(invoice, customer, company):
            total += money(invoice.get("outstanding_amount") or 0)
    return money(total)


def _counts(doc: Doc, customer: str, company: str | None) -> bool:
    return doc.get("docstatus") == 1 and doc.get("customer") == customer \
        and (not company or doc.get("company") == company)
