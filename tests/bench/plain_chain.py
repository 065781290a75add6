"""The O2C chain a team would write first: a plain Celery app, four tasks, today's calls.

The end-to-end benchmark's other side. Stock Celery on kombu's stock Redis transport (no
settings of ours: early acks, the default queue, results ignored), each task making its
calls in sequence and handing on with one ``.delay()``:

1. ``ensure_customer``: GET Account; the ERP customer by ``salesforce_id``, created if
   missing;
2. ``validate_order``: GET Opportunity, GET its OpportunityLineItems; the ERP's items,
   selling price list, item prices, tax rule, tax template, customer and outstanding
   amount, one call each;
3. ``submit_order``: POST the submitted Sales Order (keyed by the opportunity id);
4. ``write_back``: PATCH the opportunity with the order number and status.

It reads the same ``O2C_*`` connection variables as the fleet (the sandbox's) and
``PLAIN_BROKER_URL``; clients are built once per process, on first use.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

import requests
from celery import Celery
from simple_salesforce.api import Salesforce

app = Celery("plain", broker=os.environ.get("PLAIN_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True)

OUTSTANDING = "erpnext.selling.doctype.customer.customer.get_customer_outstanding"
RATE_PLACES = Decimal("0.000001")
CENT = Decimal("0.01")
#: HTTP timeout of every call, seconds (connect, read).
TIMEOUT_S = (5.0, 30.0)


@cache
def salesforce() -> Salesforce:
    """A client-credentials token, then simple-salesforce on it."""
    http = requests.Session()
    http.verify = os.environ.get("O2C_SALESFORCE_CA_BUNDLE") or True
    base = os.environ["O2C_SALESFORCE_INSTANCE_URL"]
    token = http.post(f"{base}/services/oauth2/token", timeout=TIMEOUT_S, data={
        "grant_type": "client_credentials",
        "client_id": os.environ["O2C_SALESFORCE_CLIENT_ID"],
        "client_secret": os.environ["O2C_SALESFORCE_CLIENT_SECRET"]})
    token.raise_for_status()
    return Salesforce(instance_url=base, session_id=token.json()["access_token"],
                      version=os.environ.get("O2C_SALESFORCE_API_VERSION", "60.0"),
                      session=http, parse_float=Decimal)


@cache
def erp() -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = (f"token {os.environ['O2C_ERP_API_KEY']}:"
                                     f"{os.environ['O2C_ERP_API_SECRET']}")
    return http


def erp_call(method: str, path: str, **kwargs: Any) -> Any:
    answer = erp().request(method, os.environ["O2C_ERP_BASE_URL"] + path, timeout=TIMEOUT_S,
                           **kwargs)
    answer.raise_for_status()
    return json.loads(answer.content, parse_float=Decimal)


def erp_list(doctype: str, filters: list[list[Any]], fields: list[str]) -> list[dict[str, Any]]:
    rows = erp_call("GET", f"/api/resource/{doctype}", params={
        "filters": json.dumps(filters), "fields": json.dumps(fields),
        "limit_page_length": "0"})["data"]
    return list(rows)


@app.task(name="plain.ensure_customer")
def ensure_customer(payload: dict[str, Any]) -> None:
    opportunity = payload["record"]
    account = salesforce().Account.get(opportunity["AccountId"])
    customer = find_customer(account["Id"])
    if customer is None:
        try:
            customer = erp_call("POST", "/api/resource/Customer", json={
                "customer_name": account["Name"], "customer_type": "Company",
                "customer_group": "Commercial", "territory": "All Territories",
                "salesforce_id": account["Id"], "country": account.get("BillingCountry"),
                "default_currency": account.get("CurrencyIsoCode") or "USD"})["data"]["name"]
        except requests.HTTPError as exc:
            # Two chains of one account at once: the other one created it.
            if exc.response is None or exc.response.status_code != 409:
                raise
            customer = find_customer(account["Id"])
    validate_order.delay({"opportunity_id": opportunity["Id"], "customer": customer,
                          "country": account.get("BillingCountry")})


def find_customer(account_id: str) -> str | None:
    rows = erp_list("Customer", [["salesforce_id", "=", account_id]], ["name"])
    return str(rows[0]["name"]) if rows else None


@app.task(name="plain.validate_order")
def validate_order(payload: dict[str, Any]) -> None:
    sf, opportunity_id = salesforce(), payload["opportunity_id"]
    opportunity = sf.Opportunity.get(opportunity_id)
    lines = sf.restful(f"sobjects/Opportunity/{opportunity_id}/OpportunityLineItems")["records"]
    currency = opportunity["CurrencyIsoCode"]
    codes = sorted({line["ProductCode"] for line in lines})
    known = erp_list("Item", [["item_code", "in", codes], ["disabled", "=", 0]], ["item_code"])
    if len(known) != len(codes):
        raise ValueError(f"unknown items in {codes}")
    price_list = erp_list("Price List", [["currency", "=", currency], ["selling", "=", 1],
                                         ["enabled", "=", 1]], ["name"])[0]["name"]
    prices = {row["item_code"]: Decimal(str(row["price_list_rate"])) for row in erp_list(
        "Item Price", [["price_list", "=", price_list], ["item_code", "in", codes]],
        ["item_code", "price_list_rate"])}
    items = [order_line(line, prices[line["ProductCode"]]) for line in lines]
    rule = erp_list("Tax Rule", [["billing_country", "=", payload["country"]],
                                 ["tax_type", "=", "Sales"]], ["sales_tax_template"])[0]
    template = erp_call("GET", "/api/resource/Sales Taxes and Charges Template/"
                        f"{rule['sales_tax_template']}")["data"]
    rate = sum((Decimal(str(t["rate"])) for t in template.get("taxes") or []), Decimal(0))
    net = sum((Decimal(str(line["TotalPrice"])) for line in lines), Decimal(0))
    grand_total = (net * (1 + rate / 100)).quantize(CENT, ROUND_HALF_UP)
    customer = erp_call("GET", f"/api/resource/Customer/{payload['customer']}")["data"]
    outstanding = Decimal(str(erp_call("GET", f"/api/method/{OUTSTANDING}",
                                       params={"customer": payload["customer"]})["message"]))
    limits = [Decimal(str(r["credit_limit"])) for r in customer.get("credit_limits") or []]
    if int(customer.get("is_frozen") or 0) or any(outstanding + grand_total > limit
                                                  for limit in limits if limit > 0):
        raise ValueError(f"customer {payload['customer']} is on credit hold")
    submit_order.delay({"opportunity_id": opportunity_id, "customer": payload["customer"],
                        "currency": currency, "price_list": price_list, "items": items,
                        "title": opportunity.get("Name") or opportunity_id})


def order_line(line: dict[str, Any], list_price: Decimal) -> dict[str, str]:
    """A Sales Order row at the line's net rate, its discount taken off the list price."""
    unit = Decimal(str(line["UnitPrice"]))
    discount = Decimal(str(line.get("Discount") or 0))
    if Decimal(str(line.get("ListPrice") or unit)) != list_price:
        raise ValueError(f"{line['ProductCode']}: list price differs from the ERP's")
    net = (unit * (1 - discount / 100)).quantize(RATE_PLACES, ROUND_HALF_UP)
    off = discount if unit == list_price else ((1 - net / list_price) * 100).quantize(
        Decimal("1E-10"))
    return {"item_code": line["ProductCode"], "qty": str(line["Quantity"]), "rate": str(net),
            "discount_percentage": str(off)}


@app.task(name="plain.submit_order")
def submit_order(payload: dict[str, Any]) -> None:
    today = dt.date.today().isoformat()
    order = erp_call("POST", "/api/resource/Sales Order", json={
        "customer": payload["customer"], "salesforce_id": payload["opportunity_id"],
        "po_no": payload["opportunity_id"], "title": payload["title"],
        "currency": payload["currency"], "selling_price_list": payload["price_list"],
        "transaction_date": today, "delivery_date": today, "docstatus": 1,
        "items": [{**item, "delivery_date": today} for item in payload["items"]]})["data"]
    write_back.delay({"opportunity_id": payload["opportunity_id"], "order": order["name"],
                      "status": order["status"]})


@app.task(name="plain.write_back")
def write_back(payload: dict[str, Any]) -> None:
    salesforce().Opportunity.update(payload["opportunity_id"], {
        "ERP_Order_Number__c": payload["order"], "ERP_Order_Status__c": payload["status"]})
