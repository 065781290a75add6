"""A submitted Sales Order in the ERP simulator: cancelled, amended, closed, re-opened,
delivered and invoiced, in Frappe's shapes; the unique salesforce_id as a Custom Field."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.plugins.workers import wait_for
from tests.sandbox.erp_support import ACC_OK, Client, erp_client, message_of, start_erp
from tests.sandbox.test_erp_lifecycle import SECRET, receiver_factory

__all__ = ["erp_client", "receiver_factory", "start_erp"]

OPP = "006000000000001AAA"
CANCEL = "/api/method/frappe.client.cancel"
UPDATE_STATUS = "/api/method/erpnext.selling.doctype.sales_order.sales_order.update_status"
FIELD = "/api/resource/Custom Field/Sales Order-salesforce_id"


def booked(client: Client, sf_id: str = OPP, **extra: Any) -> dict[str, Any]:
    if not client.get("/api/resource/Customer/Acme").ok:
        client.customer("Acme", ACC_OK)
    answer = client.order("Acme", sf_id, **extra)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["data"])


def cancel(client: Client, name: str) -> Any:
    return client.post(CANCEL, {"doctype": "Sales Order", "name": name})


def read(client: Client, name: str) -> dict[str, Any]:
    return dict(client.get(f"/api/resource/Sales Order/{name}").json()["data"])


def test_cancel_answers_the_cancelled_document_and_refuses_a_second_time(erp_client):
    order = booked(erp_client)
    answer = cancel(erp_client, order["name"])
    assert answer.status_code == 200
    cancelled = answer.json()["message"]
    assert (cancelled["name"], cancelled["docstatus"], cancelled["status"]) == (
        order["name"], 2, "Cancelled")
    assert {row["docstatus"] for row in cancelled["items"]} == {2}
    again = cancel(erp_client, order["name"])
    assert (again.status_code, again.json()["exc_type"]) == (417, "ValidationError")
    assert message_of(again) == "Cannot edit cancelled document"
    draft = erp_client.order("Acme", "006000000000002AAA", submit=False).json()["data"]
    refused = cancel(erp_client, draft["name"])
    assert (refused.status_code, refused.json()["exc_type"]) == (417, "DocstatusTransitionError")
    assert cancel(erp_client, "SAL-ORD-NOPE").status_code == 404


def test_a_cancelled_order_keeps_its_salesforce_id_and_is_amended_by_name(erp_client):
    order = booked(erp_client)
    # The unique index holds cancelled documents too.
    cancel(erp_client, order["name"])
    assert erp_client.order("Acme", OPP).status_code == 409
    first = booked(erp_client, f"{OPP}-1", amended_from=order["name"])
    assert (first["name"], first["amended_from"]) == (f"{order['name']}-1", order["name"])
    # Amending what is not cancelled is refused; amending it twice collides on the name.
    refused = erp_client.order("Acme", f"{OPP}-2", amended_from=first["name"])
    assert refused.status_code == 417
    assert "cannot be amended because it is not cancelled" in message_of(refused)
    twice = erp_client.order("Acme", f"{OPP}-9", amended_from=order["name"])
    assert (twice.status_code, twice.json()["exc_type"]) == (409, "DuplicateEntryError")
    cancel(erp_client, first["name"])
    second = booked(erp_client, f"{OPP}-2", amended_from=first["name"])
    assert second["name"] == f"{order['name']}-2"
    unknown = erp_client.order("Acme", f"{OPP}-3", amended_from="SAL-ORD-NOPE")
    assert "Could not find Amended From: SAL-ORD-NOPE" in message_of(unknown)


def test_an_invoiced_delivered_or_closed_order_is_not_cancelled(erp_client):
    invoiced, delivered, closed = (booked(erp_client, f"00600000000000{n}AAA")
                                   for n in (3, 4, 5))
    assert erp_client.sandbox(f"orders/{invoiced['name']}/invoice", {})["data"][
        "status"] == "To Deliver"
    refused = cancel(erp_client, invoiced["name"])
    assert refused.status_code == 417
    assert "must be cancelled before cancelling this Sales Order" in message_of(refused)
    after = erp_client.sandbox(f"orders/{delivered['name']}/deliver", {})["data"]
    assert (after["per_delivered"], after["status"]) == (100, "To Bill")
    assert "Delivery Notes" in message_of(cancel(erp_client, delivered["name"]))
    assert erp_client.post(UPDATE_STATUS, {"status": "Closed", "name": closed["name"]}).ok
    assert read(erp_client, closed["name"])["status"] == "Closed"
    assert message_of(cancel(erp_client, closed["name"])) == (
        "Closed order cannot be cancelled. Unclose to cancel.")
    assert erp_client.post(UPDATE_STATUS, {"status": "Draft", "name": closed["name"]}).ok
    assert read(erp_client, closed["name"])["status"] == "To Deliver and Bill"
    assert cancel(erp_client, closed["name"]).ok
    refused = requests.post(f"{erp_client.url}/_sandbox/orders/{closed['name']}/invoice",
                            timeout=5)
    assert refused.status_code == 400 and "cannot be invoiced" in refused.text


def test_each_change_of_a_submitted_order_sends_its_webhook(start_erp, receiver_factory):
    receiver, url = receiver_factory()
    _, client = start_erp(webhook_url=url, webhook_secret=SECRET)
    closed, cancelled = booked(client), booked(client, "006000000000002AAA")
    client.post(UPDATE_STATUS, {"status": "Closed", "name": closed["name"]})
    cancel(client, cancelled["name"])
    events = wait_for(lambda: len(receiver.events) >= 2 and receiver.events)
    assert sorted(receiver.kinds()) == [("Sales Order", "on_cancel", "Cancelled"),
                                        ("Sales Order", "on_update_after_submit", "Closed")]
    assert {e["name"] for e in events} == {closed["name"], cancelled["name"]}


def test_salesforce_id_is_a_unique_custom_field_that_an_admin_can_change(erp_client):
    fields = erp_client.get("/api/resource/Custom Field", filters=[
        ["fieldname", "=", "salesforce_id"]], fields=["name", "dt", "unique"]).json()["data"]
    assert {f["dt"]: f["unique"] for f in fields} == {
        "Customer": 1, "Sales Order": 1, "Sales Invoice": 1, "Payment Entry": 1}
    assert erp_client.put(FIELD, {"unique": 0}).json()["data"]["unique"] == 0
    booked(erp_client)
    booked(erp_client)
    refused = erp_client.put(FIELD, {"unique": 1})
    assert refused.status_code == 417
    assert "cannot be set as unique in Sales Order" in message_of(refused)
    assert erp_client.get(FIELD).json()["data"]["unique"] == 0


def test_an_erp_can_start_with_a_salesforce_id_that_is_not_unique(start_erp):
    _, client = start_erp(non_unique_salesforce_id=("Sales Order",))
    assert client.get(FIELD).json()["data"]["unique"] == 0
    first, second = booked(client), booked(client)
    assert first["name"] != second["name"]
    with pytest.raises(ValueError, match="no salesforce_id field on: Item"):
        start_erp(non_unique_salesforce_id=("Item",))
