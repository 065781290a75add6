"""Master data: customers, items, price lists, item prices, tax templates and tax rules.

Seeding from an ``ErpSeed`` creates one ``Item`` per item, one ``Price List``
(``Standard Selling <CUR>``) per currency found in the item prices, one ``Item Price`` per
item and currency, and per billing country one ``Sales Taxes and Charges Template``
(``<country> Sales Tax - <ABBR>``) with one ``Tax Rule`` pointing at it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from o2c_workers import sfid
from o2c_workers.sandbox.erp.documents import Doc, DocumentStore
from o2c_workers.sandbox.erp.errors import money, number, validation
from o2c_workers.sandbox.world import ErpSeed


def abbr(company: str) -> str:
    """ERPNext's company abbreviation: the initials of its words."""
    return "".join(word[0] for word in company.split() if word).upper() or "CO"


def price_list_name(currency: str) -> str:
    return f"Standard Selling {currency}"


def link(store: DocumentStore, doctype: str, name: Any, label: str | None = None) -> Doc:
    """The linked document, or Frappe's LinkValidationError (417)."""
    if name in (None, "") or not store.exists(doctype, str(name)):
        raise validation(f"Could not find {label or doctype}: {name}", "LinkValidationError")
    return store.get(doctype, str(name))


def seed_value(mapping: dict[str, Any] | set[str], salesforce_id: str | None) -> Any:
    """The seed entry for a Salesforce id, matching 15- and 18-character forms."""
    if not salesforce_id:
        return None
    keys = mapping if isinstance(mapping, set) else mapping.keys()
    for key in keys:
        if key == salesforce_id or sfid.same(key, salesforce_id):
            return True if isinstance(mapping, set) else mapping[key]
    return None


def prepare_customer(doc: Doc, seed: ErpSeed, *, is_new: bool) -> None:
    doc.setdefault("customer_type", "Company")
    doc.setdefault("customer_group", "Commercial")
    doc.setdefault("territory", "All Territories")
    doc["disabled"] = int(doc.get("disabled") or 0)
    if not is_new:
        doc["is_frozen"] = int(doc.get("is_frozen") or 0)
        return
    # Finance owns credit: the seed decides, whatever the request says.
    sf_id = doc.get("salesforce_id")
    doc["is_frozen"] = 1 if seed_value(seed.credit_hold, sf_id) else 0
    limit = seed_value(seed.credit_limits, sf_id)
    limit = seed.default_credit_limit if limit is None else limit
    doc["credit_limits"] = [{"company": seed.company, "credit_limit": money(limit),
                             "bypass_credit_limit_check": 0}]


def credit_limit(customer: Doc, company: str) -> Decimal | None:
    for row in customer.get("credit_limits") or []:
        if row.get("company") == company:
            return money(row.get("credit_limit") or 0)
    return None


def prepare_item(doc: Doc) -> None:
    doc.setdefault("item_name", doc["item_code"])
    doc.setdefault("item_group", "Products")
    doc.setdefault("stock_uom", "Nos")
    doc.setdefault("is_sales_item", 1)
    doc["disabled"] = int(doc.get("disabled") or 0)


def prepare_price_list(doc: Doc) -> None:
    doc["currency"] = str(doc["currency"]).upper()
    doc.setdefault("selling", 1)
    doc.setdefault("buying", 0)
    doc.setdefault("enabled", 1)


def prepare_item_price(store: DocumentStore, doc: Doc) -> None:
    item = link(store, "Item", doc["item_code"], "Item")
    price_list = link(store, "Price List", doc["price_list"], "Price List")
    doc["price_list_rate"] = money(doc["price_list_rate"])
    doc["currency"] = price_list["currency"]
    doc.setdefault("item_name", item.get("item_name"))
    doc.setdefault("uom", item.get("stock_uom"))
    doc["selling"] = 1
    for other in store.all("Item Price"):
        if (other["item_code"], other["price_list"]) == (doc["item_code"], doc["price_list"]) \
                and other.get("name") != doc.get("name"):
            raise validation(
                f"Item Price appears multiple times based on Price List, Supplier/Customer, "
                f"Currency, Item, Batch, UOM, Qty, and Dates: {doc['item_code']} in "
                f"{doc['price_list']}", "ItemPriceDuplicateItem")


def item_price(store: DocumentStore, item_code: str, price_list: str) -> Doc | None:
    for doc in store.all("Item Price"):
        if doc["item_code"] == item_code and doc["price_list"] == price_list:
            return doc
    return None


def prepare_tax_template(doc: Doc, seed: ErpSeed) -> None:
    doc.setdefault("company", seed.company)
    rows = doc.get("taxes") or []
    if not isinstance(rows, list) or not rows:
        raise validation("Error: Value missing for Sales Taxes and Charges Template: Taxes",
                         "MandatoryError")
    for row in rows:
        row.setdefault("charge_type", "On Net Total")
        row.setdefault("account_head", f"Output Tax - {abbr(seed.company)}")
        row.setdefault("description", row["account_head"])
        row["rate"] = number(row.get("rate"), "tax rate")


def prepare_tax_rule(store: DocumentStore, doc: Doc, seed: ErpSeed) -> None:
    link(store, "Sales Taxes and Charges Template", doc["sales_tax_template"],
         "Sales Taxes and Charges Template")
    doc.setdefault("tax_type", "Sales")
    doc.setdefault("company", seed.company)
    doc.setdefault("priority", 1)
    doc["use_for_shopping_cart"] = 0


def tax_template_for(store: DocumentStore, country: str | None) -> Doc | None:
    """The template of the best Tax Rule for a billing country (highest priority, newest)."""
    if not country:
        return None
    rules = [r for r in store.all("Tax Rule")
             if str(r.get("billing_country", "")).casefold() == country.casefold()
             and r.get("tax_type", "Sales") == "Sales"]
    if not rules:
        return None
    best = max(enumerate(rules), key=lambda pair: (int(pair[1].get("priority") or 0), pair[0]))
    return store.get("Sales Taxes and Charges Template", best[1]["sales_tax_template"])


def add_tax_rule(store: DocumentStore, seed: ErpSeed, country: str, rate: Any) -> Doc:
    """Create a template and a Tax Rule for ``country`` (the ops fix for a missing one)."""
    title = f"{country} Sales Tax"
    with store.lock:
        name = f"{title} - {abbr(seed.company)}"
        if not store.exists("Sales Taxes and Charges Template", name):
            template: Doc = {"doctype": "Sales Taxes and Charges Template", "title": name,
                             "taxes": [{"rate": rate, "description": f"{title} {rate}%"}]}
            prepare_tax_template(template, seed)
            store.insert(template)
        rule: Doc = {"doctype": "Tax Rule", "sales_tax_template": name,
                     "billing_country": country}
        prepare_tax_rule(store, rule, seed)
        return store.insert(rule)


def seed_store(store: DocumentStore, seed: ErpSeed) -> None:
    """Fill an empty store with the seed's items, prices and tax rules."""
    with store.lock:
        currencies = sorted({cur.upper() for item in seed.items for cur in item.prices})
        for currency in currencies:
            doc: Doc = {"doctype": "Price List", "price_list_name": price_list_name(currency),
                        "currency": currency}
            prepare_price_list(doc)
            store.insert(doc)
        for item_seed in seed.items:
            item: Doc = {"doctype": "Item", "item_code": item_seed.code,
                         "item_name": item_seed.name, "stock_uom": item_seed.uom}
            prepare_item(item)
            store.insert(item)
            for currency, price in sorted(item_seed.prices.items()):
                item_price_doc: Doc = {"doctype": "Item Price", "item_code": item_seed.code,
                                       "price_list": price_list_name(currency.upper()),
                                       "price_list_rate": price}
                prepare_item_price(store, item_price_doc)
                store.insert(item_price_doc)
        for country, rate in sorted(seed.tax_rates.items()):
            add_tax_rule(store, seed, country, rate)

