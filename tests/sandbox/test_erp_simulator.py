"""The ERP simulator over real HTTP: auth, error shapes, resources, uniqueness, rules."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import requests

from tests.sandbox.erp_support import (
    ACC_FROZEN,
    ACC_LIMITED,
    ACC_OK,
    Client,
    erp_client,
    message_of,
    start_erp,
)

__all__ = ["erp_client", "start_erp"]


def test_missing_or_wrong_token_answers_401_in_frappe_shape(erp_client: Client) -> None:
    anonymous = requests.get(erp_client.url + "/api/resource/Customer", timeout=5)
    wrong = requests.get(erp_client.url + "/api/resource/Customer", timeout=5,
                         headers={"Authorization": "token sandbox-key:nope"})
    for response in (anonymous, wrong):
        assert response.status_code == 401
        body = response.json()
        assert body["exc_type"] == "AuthenticationError"
        assert isinstance(body["_server_messages"], str)
        assert message_of(response) == "Invalid API key or secret"
    assert erp_client.get("/api/resource/Customer").status_code == 200


def test_unknown_doctype_and_record_answer_404(erp_client: Client) -> None:
    doctype = erp_client.get("/api/resource/Spaceship")
    record = erp_client.get("/api/resource/Sales Order/SAL-ORD-1999-00001")
    assert (doctype.status_code, doctype.json()["exc_type"]) == (404, "DoesNotExistError")
    assert message_of(doctype) == "DocType Spaceship not found"
    assert (record.status_code, record.json()["exc_type"]) == (404, "DoesNotExistError")
    assert message_of(record) == "Sales Order SAL-ORD-1999-00001 not found"


def test_seeded_master_data_is_listed(erp_client: Client) -> None:
    lists = erp_client.get("/api/resource/Price List", fields=["name", "currency"],
                           order_by="name asc").json()["data"]
    assert lists == [{"name": "Standard Selling EUR", "currency": "EUR"},
                     {"name": "Standard Selling USD", "currency": "USD"}]
    price = erp_client.get("/api/resource/Item Price", fields=["price_list_rate"],
                           filters=[["item_code", "=", "GADGET"]]).json()["data"]
    assert price == [{"price_list_rate": 19.99}]
    rules = erp_client.get("/api/resource/Tax Rule",
                           fields=["billing_country", "sales_tax_template"],
                           order_by="billing_country asc").json()["data"]
    assert [r["billing_country"] for r in rules] == ["Germany", "United States"]
    template = erp_client.get(f"/api/resource/Sales Taxes and Charges Template/"
                              f"{rules[0]['sales_tax_template']}").json()["data"]
    assert template["taxes"][0]["rate"] == 19
    assert erp_client.get("/api/resource/Item/WIDGET").json()["data"]["item_name"] == "Widget"


def test_customer_is_named_after_customer_name_and_salesforce_id_is_unique(
        erp_client: Client) -> None:
    first = erp_client.customer("Acme", ACC_OK)
    assert first["name"] == "Acme"
    again = erp_client.post("/api/resource/Customer",
                            {"customer_name": "Acme Renamed", "salesforce_id": ACC_OK})
    assert again.status_code == 409
    assert again.json()["exc_type"] == "DuplicateEntryError"
    assert message_of(again) == f"Customer with salesforce_id {ACC_OK} already exists: Acme"
    namesake = erp_client.customer("Acme", "001000000000009AAA")
    assert namesake["name"] == "Acme - 1"
    names = erp_client.get("/api/resource/Customer", fields=["name"],
                           limit_page_length=0).json()["data"]
    assert sorted(n["name"] for n in names) == ["Acme", "Acme - 1"]
    stats = erp_client.sandbox("stats")
    assert stats["duplicates_refused"] == {"total": 1, "by_doctype": {"Customer": 1}}
    assert stats["documents"]["Customer"] == 2


def test_list_filters_fields_paging_and_order(erp_client: Client) -> None:
    for index in range(1, 6):
        erp_client.customer(f"Cust {index}", f"00100000000010{index}AAA",
                            country="Germany" if index % 2 else "United States")
    path = "/api/resource/Customer"

    def names(**params: object) -> list[str]:
        response = erp_client.get(path, **params)
        assert response.status_code == 200, response.text
        return [row["name"] for row in response.json()["data"]]

    assert names(filters=[["country", "=", "Germany"]], order_by="name asc") == \
        ["Cust 1", "Cust 3", "Cust 5"]
    assert names(filters=[["country", "!=", "Germany"]], order_by="name asc") == \
        ["Cust 2", "Cust 4"]
    assert names(filters=[["name", "in", ["Cust 2", "Cust 5"]]], order_by="name desc") == \
        ["Cust 5", "Cust 2"]
    assert names(filters=[["Customer", "name", "like", "%st 3"]]) == ["Cust 3"]
    assert names(filters={"country": "United States"}, order_by="name asc") == \
        ["Cust 2", "Cust 4"]
    assert names(filters={"name": ["not in", ["Cust 1"]]}, order_by="name asc",
                 limit_page_length=2, limit_start=1) == ["Cust 3", "Cust 4"]
    assert names(order_by="creation asc", limit_page_length=2) == ["Cust 1", "Cust 2"]
    prices = erp_client.get("/api/resource/Item Price", fields=["item_code"],
                            filters=[["price_list_rate", ">=", 19.99],
                                     ["price_list_rate", "<", 100]],
                            order_by="item_code asc").json()["data"]
    assert prices == [{"item_code": "GADGET"}, {"item_code": "WIDGET"}]
    cheap = erp_client.get("/api/resource/Item Price", fields=["item_code"],
                           filters=[["price_list_rate", "<=", 19.99],
                                    ["price_list_rate", ">", 0.5]]).json()["data"]
    assert cheap == [{"item_code": "GADGET"}]
    default = erp_client.get(path, limit_page_length=1).json()["data"]
    assert default == [{"name": "Cust 5"}]
    bad = erp_client.get(path, filters=[["name", "~", "x"]])
    assert bad.status_code == 417
    assert message_of(bad) == "Invalid filter operator: ~"


def test_order_totals_are_exact_to_the_cent(erp_client: Client) -> None:
    erp_client.customer("Acme", ACC_OK)
    response = erp_client.order("Acme", "006000000000001AAA", items=[
        {"item_code": "GADGET", "qty": 3, "discount_percentage": 12.5},
        {"item_code": "PENNY", "qty": 1, "rate": 0.5},
    ])
    assert response.status_code == 200, response.text
    order = response.json(parse_float=Decimal)["data"]
    assert re.fullmatch(r"SAL-ORD-\d{4}-00001", order["name"])
    assert order["docstatus"] == 1 and order["status"] == "To Deliver and Bill"
    gadget, penny = order["items"]
    # 19.99 less 12.5 % = 17.49125 (rates keep 6 places); three of them 52.47375 → 52.47;
    # tax 5 % of 52.97 = 2.6485 → 2.65.
    assert (gadget["price_list_rate"], gadget["rate"], gadget["amount"]) == \
        (Decimal("19.99"), Decimal("17.49125"), Decimal("52.47"))
    assert penny["amount"] == Decimal("0.5")
    assert order["net_total"] == Decimal("52.97")
    assert order["total_taxes_and_charges"] == Decimal("2.65")
    assert order["grand_total"] == Decimal("55.62")
    assert order["taxes"][0]["tax_amount"] == Decimal("2.65")


def test_half_cent_tax_rounds_half_up(erp_client: Client) -> None:
    erp_client.customer("Acme", ACC_OK)
    order = erp_client.order("Acme", "006000000000002AAA",
                             items=[{"item_code": "PENNY", "qty": 1}]).json(
        parse_float=Decimal)["data"]
    # 5 % of 0.50 is 0.025: half up gives 0.03 where banker's rounding gives 0.02.
    assert order["total_taxes_and_charges"] == Decimal("0.03")
    assert order["grand_total"] == Decimal("0.53")


def test_price_mismatch_is_refused_and_request_list_rate_is_not_trusted(
        erp_client: Client) -> None:
    erp_client.customer("Acme", ACC_OK)
    response = erp_client.order("Acme", "006000000000003AAA", items=[
        {"item_code": "WIDGET", "qty": 1, "price_list_rate": 80, "rate": 72,
         "discount_percentage": 10}])
    assert response.status_code == 417
    assert response.json()["exc_type"] == "ValidationError"
    assert message_of(response) == ("Price mismatch in Row #1: Item Code WIDGET: rate 72.00 "
                                    "differs from price list rate 100.00 less 10% discount "
                                    "= 90.00")
    assert erp_client.get("/api/resource/Sales Order").json()["data"] == []


def test_unknown_item_unknown_customer_and_unpriced_currency(erp_client: Client) -> None:
    erp_client.customer("Acme", ACC_OK)
    item = erp_client.order("Acme", "006000000000004AAA",
                            items=[{"item_code": "WIDGET"}, {"item_code": "XYZ"}])
    assert (item.status_code, item.json()["exc_type"]) == (417, "LinkValidationError")
    assert message_of(item) == "Could not find Row #2: Item Code: XYZ"
    customer = erp_client.order("Nobody", "006000000000005AAA")
    assert message_of(customer) == "Could not find Customer: Nobody"
    currency = erp_client.order("Acme", "006000000000006AAA", currency="GBP")
    assert currency.status_code == 417
    assert message_of(currency) == "Price List not found for currency GBP"
    euro = erp_client.order("Acme", "006000000000007AAA", currency="EUR",
                            items=[{"item_code": "WIDGET", "qty": 2}])
    assert euro.status_code == 200, euro.text
    assert euro.json()["data"]["selling_price_list"] == "Standard Selling EUR"
    assert euro.json()["data"]["net_total"] == 180
    missing = erp_client.post("/api/resource/Sales Order", {"customer": "Acme"})
    assert (missing.status_code, missing.json()["exc_type"]) == (417, "MandatoryError")


def test_frozen_customer_cannot_submit(erp_client: Client) -> None:
    customer = erp_client.customer("Frozen Ltd", ACC_FROZEN)
    assert customer["is_frozen"] == 1
    draft = erp_client.order("Frozen Ltd", "006000000000010AAA", submit=False)
    assert draft.status_code == 200 and draft.json()["data"]["docstatus"] == 0
    name = draft.json()["data"]["name"]
    submit = erp_client.put(f"/api/resource/Sales Order/{name}", {"docstatus": 1})
    assert (submit.status_code, submit.json()["exc_type"]) == (417, "PartyFrozen")
    assert message_of(submit) == "Customer Frozen Ltd is frozen"
    assert erp_client.get(f"/api/resource/Sales Order/{name}").json()["data"]["docstatus"] == 0
    direct = erp_client.order("Frozen Ltd", "006000000000011AAA")
    assert direct.json()["exc_type"] == "PartyFrozen"


def test_credit_limit_counts_outstanding_orders(erp_client: Client) -> None:
    customer = erp_client.customer("Limited", ACC_LIMITED)
    assert customer["credit_limits"][0]["credit_limit"] == Decimal("500")
    # 4 x 100 + 5 % tax = 420: within 500.
    first = erp_client.order("Limited", "006000000000020AAA",
                             items=[{"item_code": "WIDGET", "qty": 4}])
    assert first.status_code == 200, first.text
    outstanding = erp_client.get(
        "/api/method/erpnext.selling.doctype.customer.customer.get_customer_outstanding",
        customer="Limited", company="O2C Sandbox Inc")
    assert outstanding.json() == {"message": 420}
    second = erp_client.order("Limited", "006000000000021AAA")
    assert second.status_code == 417
    assert message_of(second) == "Credit limit has been crossed for customer Limited " \
        "(525.00/500.00)"
    orders = erp_client.get("/api/resource/Sales Order", filters={"customer": "Limited"})
    assert len(orders.json()["data"]) == 1


def test_missing_tax_rule_fails_submit_until_ops_add_one(erp_client: Client) -> None:
    erp_client.customer("Narnia Co", ACC_OK, country="Narnia")
    refused = erp_client.order("Narnia Co", "006000000000030AAA")
    assert refused.status_code == 417
    assert message_of(refused) == "Tax configuration missing: no Tax Rule for billing " \
        "country Narnia"
    draft = erp_client.order("Narnia Co", "006000000000030AAA", submit=False).json()["data"]
    assert draft["taxes"] == [] and draft["taxes_and_charges"] is None
    erp_client.sandbox("tax-rules", {"country": "Narnia", "rate": "10"})
    submitted = erp_client.put(f"/api/resource/Sales Order/{draft['name']}", {"docstatus": 1})
    assert submitted.status_code == 200, submitted.text
    data = submitted.json(parse_float=Decimal)["data"]
    assert (data["docstatus"], data["grand_total"]) == (1, Decimal("110"))


def test_submitted_documents_only_take_status_changes(erp_client: Client) -> None:
    erp_client.customer("Acme", ACC_OK)
    draft = erp_client.order("Acme", "006000000000040AAA", submit=False).json()["data"]
    path = f"/api/resource/Sales Order/{draft['name']}"
    edited = erp_client.put(path, {"po_no": "PO-1", "items": [{"item_code": "WIDGET",
                                                               "qty": 2}]})
    assert edited.status_code == 200 and edited.json()["data"]["net_total"] == 200
    assert erp_client.put(path, {"docstatus": 1}).json()["data"]["status"] == \
        "To Deliver and Bill"
    after = erp_client.put(path, {"po_no": "PO-2"})
    assert (after.status_code, after.json()["exc_type"]) == (417, "UpdateAfterSubmitError")
    assert message_of(after) == "Not allowed to change Po No after submission"
    back = erp_client.put(path, {"docstatus": 0})
    assert back.json()["exc_type"] == "DocstatusTransitionError"
    assert erp_client.put(path, {"po_no": "PO-1"}).status_code == 200


def test_duplicate_order_is_refused_and_nothing_is_created(erp_client: Client) -> None:
    erp_client.customer("Acme", ACC_OK)
    assert erp_client.order("Acme", "006000000000050AAA").status_code == 200
    duplicate = erp_client.order("Acme", "006000000000050AAA")
    assert duplicate.status_code == 409
    assert message_of(duplicate).startswith(
        "Sales Order with salesforce_id 006000000000050AAA already exists: SAL-ORD-")
    found = erp_client.get("/api/resource/Sales Order",
                           filters=[["salesforce_id", "=", "006000000000050AAA"]])
    assert len(found.json()["data"]) == 1
    stats = erp_client.sandbox("stats")
    assert stats["duplicates_refused"]["by_doctype"] == {"Sales Order": 1}
    assert stats["documents"]["Sales Order"] == 1


def test_form_encoded_data_and_method_calls(erp_client: Client) -> None:
    response = requests.post(erp_client.url + "/api/resource/Customer", headers=erp_client.headers,
                             data={"data": json.dumps({"customer_name": "Form Co"})}, timeout=5)
    assert response.status_code == 200 and response.json()["data"]["name"] == "Form Co"
    count = erp_client.get("/api/method/frappe.client.get_count", doctype="Customer")
    assert count.json() == {"message": 1}
    assert erp_client.get("/api/method/frappe.auth.get_logged_user").json() == \
        {"message": "Administrator"}
    unknown = erp_client.get("/api/method/no.such.method")
    assert unknown.status_code == 404


def test_parallel_duplicates_create_exactly_one_order(erp_client: Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    erp_client.customer("Acme", ACC_OK)

    def submit(_: int) -> int:
        body = {"customer": "Acme", "salesforce_id": "006000000000060AAA", "docstatus": 1,
                "items": [{"item_code": "GADGET", "qty": 1}]}
        return requests.post(erp_client.url + "/api/resource/Sales Order", json=body,
                             headers=erp_client.headers, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = sorted(pool.map(submit, range(20)))
    assert statuses == [200] + [409] * 19
    assert erp_client.sandbox("stats")["documents"]["Sales Order"] == 1
