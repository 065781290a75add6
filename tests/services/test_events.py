"""ERP events that carry their document: applied as they came, without asking the ERP, unless
a newer version of the document was seen; then the ERP is read and the current state
decides. Real clients against the simulators and real Redis; no worker."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import requests

from o2c_workers.erp import documents
from o2c_workers.sandbox.erp import ErpConfig
from o2c_workers.services import billing, orders
from o2c_workers.services.orders import WriteBackFields
from tests.plugins.workers import wait_for
from tests.services.conftest import services_on
from tests.services.test_orders import priced, submit
from tests.services.test_pricing import good

FIELDS = WriteBackFields()
QUIET = {"invoice_delay_s": 3600.0, "payment_delay_s": 3600.0}


@pytest.fixture
def sandbox(sandbox_factory):
    return sandbox_factory(erp_config=ErpConfig(**QUIET))


def document(services, doctype: str, name: str) -> dict[str, Any]:
    """The document as a webhook would carry it: JSON numbers read as the receiver reads
    them (floats), then kept to what the task needs."""
    raw = requests.get(f"{services.sandbox.erp_url}/_sandbox/documents/{doctype}",
                       timeout=5).content
    [doc] = [d for d in orjson.loads(raw)["data"] if d["name"] == name]
    return doc


def event_of(services, doctype: str, name: str, event: str) -> dict[str, Any]:
    """The task's payload of a webhook event (``receiver.erp_events``: with ``doc``)."""
    doc = document(services, doctype, name)
    carried = documents.event_doc(doctype, doc)
    assert carried is not None
    return {"event": event, "doctype": doctype, "name": name, "modified": doc["modified"],
            "doc": carried, "received_at": time.time()}


def api_calls(services) -> list[str]:
    calls = requests.get(f"{services.sandbox.erp_url}/_sandbox/calls", timeout=5).json()
    return [f"{c['method']} {c['path']}" for c in calls["calls"]]


def invoice_now(services, order_name: str) -> str:
    requests.post(f"{services.sandbox.erp_url}/_sandbox/orders/{order_name}/invoice",
                  timeout=5).raise_for_status()
    raw = requests.get(f"{services.sandbox.erp_url}/_sandbox/documents/Sales Invoice",
                       timeout=5).json()["data"]
    return next(d["name"] for d in raw
                if order_name in {row.get("sales_order") for row in d["items"]})


def booked(services) -> tuple[str, str]:
    opp = good(services)
    return opp, submit(services, priced(services, opp)).need_erp_order().name


def status_of(services, opp: str) -> str | None:
    return services.sf.get_opportunity(opp).get(FIELDS.order_status)


def test_a_status_event_with_its_document_is_written_without_asking_the_erp(services):
    opp, name = booked(services)
    invoice_now(services, name)
    event = event_of(services, "Sales Order", name, "on_update_after_submit")
    assert event["doc"]["status"] == "To Deliver"
    before = len(api_calls(services))
    current = orders.sync_status(name, out=services.out, erp=services.erp, fields=FIELDS,
                                 event=event)
    assert api_calls(services)[before:] == []
    assert current.name == name and status_of(services, opp) == "To Deliver"


def test_a_stale_status_event_never_overwrites_a_newer_status(services):
    opp, name = booked(services)
    older = event_of(services, "Sales Order", name, "on_update_after_submit")
    assert older["doc"]["status"] == "To Deliver and Bill"
    invoice_now(services, name)
    newer = event_of(services, "Sales Order", name, "on_update_after_submit")
    assert newer["modified"] > older["modified"]
    orders.sync_status(name, out=services.out, erp=services.erp, fields=FIELDS, event=newer)
    assert status_of(services, opp) == "To Deliver"
    # The older event comes late: a newer version was seen, so the order is read again
    # and its current status stands.
    before = len(api_calls(services))
    orders.sync_status(name, out=services.out, erp=services.erp, fields=FIELDS, event=older)
    assert status_of(services, opp) == "To Deliver"
    assert f"GET /api/resource/Sales Order/{name}" in api_calls(services)[before:]


def test_a_stale_event_is_stale_for_every_worker_and_after_a_read(services):
    """The version seen is kept on Redis, not in one process, and the adapter's own reads
    count: an event older than what the order step read is stale too."""
    opp, name = booked(services)
    older = event_of(services, "Sales Order", name, "on_update_after_submit")
    invoice_now(services, name)
    services.erp.get_sales_order(name)
    other = services_on(services.sandbox, services.settings.redis_url,
                        services.erp.versions.client)
    before = len(api_calls(services))
    orders.sync_status(name, out=other.out, erp=other.erp, fields=FIELDS, event=older)
    assert status_of(services, opp) == "To Deliver"
    assert f"GET /api/resource/Sales Order/{name}" in api_calls(services)[before:]


def test_an_invoice_event_with_its_document_asks_the_erp_nothing(services):
    opp, name = booked(services)
    invoice = invoice_now(services, name)
    event = event_of(services, "Sales Invoice", invoice, "on_submit")
    before = len(api_calls(services))
    synced = billing.sync_invoice(invoice, out=services.out, erp=services.erp, fields=FIELDS,
                                  event=event)
    # The invoice came with the event; its order's booking was kept when it was submitted.
    assert api_calls(services)[before:] == []
    assert synced.opportunity_id == opp and synced.order.name == name
    assert synced.invoice.grand_total == synced.order.grand_total
    assert services.sf.get_opportunity(opp)[FIELDS.invoice_status] == "Unpaid"


def test_an_event_whose_document_is_not_the_events_is_read(services):
    _, name = booked(services)
    invoice = invoice_now(services, name)
    event = event_of(services, "Sales Invoice", invoice, "on_submit")
    event["doc"]["name"] = "ACC-SINV-OTHER"
    before = len(api_calls(services))
    billing.sync_invoice(invoice, out=services.out, erp=services.erp, fields=FIELDS,
                         event=event)
    assert api_calls(services)[before:] == [f"GET /api/resource/Sales Invoice/{invoice}"]


def test_an_event_whose_document_cannot_be_read_is_read_from_the_erp(services):
    _, name = booked(services)
    invoice = invoice_now(services, name)
    event = event_of(services, "Sales Invoice", invoice, "on_submit")
    event["doc"]["grand_total"] = "not an amount"
    before = len(api_calls(services))
    synced = billing.sync_invoice(invoice, out=services.out, erp=services.erp, fields=FIELDS,
                                  event=event)
    assert api_calls(services)[before:] == [f"GET /api/resource/Sales Invoice/{invoice}"]
    assert synced.invoice.grand_total == synced.order.grand_total


def test_a_payment_event_reads_only_the_invoices_it_pays(sandbox_factory, redis_url,
                                                         redis_client):
    services = services_on(sandbox_factory(erp_config=ErpConfig(
        invoice_delay_s=3600.0, payment_delay_s=0.1, unpaid_ratio=0.0,
        partial_payment_ratio=0.0)), redis_url, redis_client)
    opp, name = booked(services)
    invoice = invoice_now(services, name)
    payment = wait_for(lambda: next(
        (d["name"] for d in requests.get(
            f"{services.sandbox.erp_url}/_sandbox/documents/Payment Entry", timeout=5
        ).json()["data"]), None), timeout_s=10, what="the payment")
    event = event_of(services, "Payment Entry", payment, "on_submit")
    before = len(api_calls(services))
    [synced] = billing.apply_payment(payment, out=services.out, erp=services.erp,
                                     fields=FIELDS, event=event)
    assert api_calls(services)[before:] == [f"GET /api/resource/Sales Invoice/{invoice}"]
    assert synced.opportunity_id == opp
    assert services.sf.get_opportunity(opp)[FIELDS.payment_status] == "Paid"


def test_an_event_taken_in_days_ago_is_read_whatever_it_carries(services):
    """A dead letter requeued days later: the versions seen since may have expired, so its
    document is not trusted."""
    opp, name = booked(services)
    old = event_of(services, "Sales Order", name, "on_update_after_submit")
    old["received_at"] = time.time() - services.settings.dedupe_ttl_s
    invoice_now(services, name)
    services.erp.versions.client.delete(f"o2c:erp:version:Sales Order:{name}")
    before = len(api_calls(services))
    orders.sync_status(name, out=services.out, erp=services.erp, fields=FIELDS, event=old)
    assert status_of(services, opp) == "To Deliver"
    assert f"GET /api/resource/Sales Order/{name}" in api_calls(services)[before:]
