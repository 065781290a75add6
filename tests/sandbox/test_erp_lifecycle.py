"""Invoicing, payment and signed webhooks of the ERP simulator, to a real HTTP receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from o2c_workers.sandbox.http import RunningServer, serve
from tests.plugins.workers import wait_for
from tests.sandbox.erp_support import ACC_OK, erp_client, start_erp

__all__ = ["erp_client", "start_erp"]

SECRET = "test-webhook-secret"


class Receiver:
    """Records every webhook it is sent; refuses the first ``fail_first`` with a 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest())
        signature = environ.get("HTTP_X_FRAPPE_WEBHOOK_SIGNATURE", "").encode()
        with self._lock:
            self.attempts += 1
            if self.attempts <= self.fail_first:
                start_response("500 Internal Server Error", [("Content-Length", "0")])
                return [b""]
            if not hmac.compare_digest(expected, signature):
                self.bad_signatures += 1
                start_response("401 Unauthorized", [("Content-Length", "0")])
                return [b""]
            self.events.append(json.loads(body, parse_float=Decimal))
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    def kinds(self) -> list[tuple[str, str, str | None]]:
        with self._lock:
            return [(e["doctype"], e["event"], e["doc"].get("status")) for e in self.events]


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    servers: list[RunningServer] = []

    def make(fail_first: int = 0) -> tuple[Receiver, str]:
        receiver = Receiver(fail_first)
        server = serve(receiver, port=0, name="webhook-receiver")
        servers.append(server)
        return receiver, server.url + "/erp/events"

    yield make
    for server in servers:
        server.stop()


def _start(start_erp: Any, url: str, **config: Any) -> Any:
    config = {"webhook_url": url, "webhook_secret": SECRET, "invoice_delay_s": 0.05,
              "payment_delay_s": 0.05, "partial_payment_ratio": 0.0, "unpaid_ratio": 0.0,
              "webhook_retry_base_s": 0.05, "webhook_retry_cap_s": 0.1, **config}
    return start_erp(**config)


def test_order_is_invoiced_then_paid_with_signed_webhooks(start_erp: Any,
                                                          receiver_factory: Any) -> None:
    receiver, url = receiver_factory()
    _, client = _start(start_erp, url)
    client.customer("Acme", ACC_OK)
    order = client.order("Acme", "006000000000001AAA",
                         items=[{"item_code": "WIDGET", "qty": 2}]).json()["data"]
    wait_for(lambda: len(receiver.events) >= 4)
    assert receiver.kinds() == [
        ("Sales Invoice", "on_submit", "Unpaid"),
        ("Sales Order", "on_update_after_submit", "To Deliver"),
        ("Payment Entry", "on_submit", "Submitted"),
        ("Sales Order", "on_update_after_submit", "Completed"),
    ]
    assert receiver.bad_signatures == 0
    invoice_event, _, payment_event, _ = receiver.events
    assert set(invoice_event) == {"event", "doctype", "name", "modified", "doc"}
    invoice = invoice_event["doc"]
    assert invoice["name"] == invoice_event["name"]
    assert invoice["name"].startswith("ACC-SINV-")
    assert invoice["items"][0]["sales_order"] == order["name"]
    for total in ("net_total", "total_taxes_and_charges", "grand_total"):
        assert invoice[total] == Decimal(str(order[total]))
    payment = payment_event["doc"]
    assert payment["name"].startswith("ACC-PAY-")
    assert (payment["payment_type"], payment["party"]) == ("Receive", "Acme")
    assert payment["references"][0]["reference_name"] == invoice["name"]
    assert payment["paid_amount"] == Decimal("210")
    paid = client.get(f"/api/resource/Sales Invoice/{invoice['name']}").json()["data"]
    assert (paid["status"], paid["outstanding_amount"]) == ("Paid", 0)
    stats = client.sandbox("stats")
    assert stats["webhooks"]["delivered"] == 4 and stats["webhooks"]["pending"] == 0
    assert stats["documents"]["Payment Entry"] == 1


def test_webhooks_are_retried_until_accepted(start_erp: Any, receiver_factory: Any) -> None:
    receiver, url = receiver_factory(fail_first=3)
    _, client = _start(start_erp, url, payment_delay_s=60)
    client.customer("Acme", ACC_OK)
    client.order("Acme", "006000000000002AAA")
    wait_for(lambda: len(receiver.events) >= 2)
    deliveries = client.sandbox("webhooks")["deliveries"]
    assert all(d["delivered"] for d in deliveries)
    first = deliveries[0]
    assert [a["status"] for a in first["attempts"]][-1] == 200
    assert sum(len(d["attempts"]) for d in deliveries) == receiver.attempts
    stats = client.sandbox("stats")["webhooks"]
    assert stats["failed_attempts"] == 3 and stats["attempts"] == receiver.attempts


def test_partial_and_missing_payments_follow_the_ratios(start_erp: Any,
                                                        receiver_factory: Any) -> None:
    receiver, url = receiver_factory()
    _, partial = _start(start_erp, url, partial_payment_ratio=1.0)
    partial.customer("Acme", ACC_OK)
    partial.order("Acme", "006000000000003AAA")
    wait_for(lambda: any(k[0] == "Payment Entry" for k in receiver.kinds()))
    invoice = partial.get("/api/resource/Sales Invoice",
                          fields=["status", "outstanding_amount", "grand_total"]).json()["data"]
    assert invoice[0]["status"] == "Partly Paid"
    assert 0 < invoice[0]["outstanding_amount"] < invoice[0]["grand_total"]
    order = partial.get("/api/resource/Sales Order", fields=["status"]).json()["data"]
    assert order == [{"status": "To Deliver"}]

    _, unpaid = _start(start_erp, None, unpaid_ratio=1.0, payment_delay_s=0.01)
    unpaid.customer("Acme", ACC_OK)
    unpaid.order("Acme", "006000000000004AAA")
    wait_for(lambda: unpaid.get("/api/resource/Sales Invoice").json()["data"])
    threading.Event().wait(0.2)
    assert unpaid.get("/api/resource/Payment Entry").json()["data"] == []
    events = unpaid.sandbox("webhooks")["deliveries"]
    assert [e["doctype"] for e in events] == ["Sales Invoice", "Sales Order"]
    assert all(e["attempts"] == [] for e in events)


def test_payment_entry_posted_through_the_api_pays_the_invoice(start_erp: Any) -> None:
    _, client = start_erp(invoice_delay_s=0.01, payment_delay_s=60, unpaid_ratio=1.0)
    client.customer("Acme", ACC_OK)
    client.order("Acme", "006000000000005AAA")
    invoice = wait_for(lambda: client.get("/api/resource/Sales Invoice",
                                          fields=["name", "grand_total"]).json()["data"])[0]
    too_much = client.post("/api/resource/Payment Entry", {
        "party": "Acme", "paid_amount": 1000, "docstatus": 1, "salesforce_id": "a01PAY",
        "references": [{"reference_name": invoice["name"], "allocated_amount": 1000}]})
    assert too_much.status_code == 417
    paid = client.post("/api/resource/Payment Entry", {
        "party": "Acme", "paid_amount": invoice["grand_total"], "docstatus": 1,
        "salesforce_id": "a01PAY",
        "references": [{"reference_name": invoice["name"],
                        "allocated_amount": invoice["grand_total"]}]})
    assert paid.status_code == 200, paid.text
    assert client.post("/api/resource/Payment Entry", {
        "party": "Acme", "paid_amount": 1, "salesforce_id": "a01PAY"}).status_code == 409
    after = client.get(f"/api/resource/Sales Invoice/{invoice['name']}").json()["data"]
    assert after["status"] == "Paid"
    order = client.get("/api/resource/Sales Order", fields=["status"]).json()["data"]
    assert order == [{"status": "Completed"}]
