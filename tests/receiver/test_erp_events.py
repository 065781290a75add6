"""``POST /erp/events``: signed ERPNext webhooks, deduped and routed to their queues."""

from __future__ import annotations

import json

import pytest

from config import load_settings
from o2c_workers import app as celery_app
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.receiver.app import Receiver
from o2c_workers.receiver.erp_events import SIGNATURE_HEADER, signature
from tests.helpers import call_wsgi, queued

SECRET = "erp-webhook-secret"


@pytest.fixture
def erp_receiver(settings, redis_client):
    configured = load_settings(**{**settings.model_dump(), "erp_webhook_secret": SECRET})
    return Receiver(configured, redis_client=redis_client, celery_app=celery_app)


def event(doctype="Sales Invoice", name="ACC-SINV-2026-00001", kind="on_submit", **doc):
    return json.dumps({"event": kind, "doctype": doctype, "name": name,
                       "modified": "2026-11-28 10:00:00.000001", "doc": doc}).encode()


def post(receiver, body, *, secret=SECRET):
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(secret, body)}
    return call_wsgi(receiver, "POST", "/erp/events", body, headers=headers)


def test_signed_invoice_event_is_enqueued_once(erp_receiver, redis_client):
    body = event(po_no="0065g00000AbCdE")
    status, _, answer = post(erp_receiver, body)
    assert status == 200
    assert json.loads(answer) == {"status": "enqueued", "trace_key": "0065g00000AbCdEAAV"}
    assert json.loads(post(erp_receiver, body)[2])["status"] == "duplicate"
    [message] = queued(redis_client, "invoice")
    assert message["headers"]["task"] == "o2c.invoice.sync_invoice"
    assert message["args"][0]["name"] == "ACC-SINV-2026-00001"
    assert "doc" not in message["args"][0]


def test_routes_by_doctype_and_event(erp_receiver, redis_client):
    post(erp_receiver, event("Payment Entry", "ACC-PAY-2026-00001"))
    post(erp_receiver, event("Sales Order", "SAL-ORD-2026-00001", "on_update_after_submit",
                             salesforce_id="0065g00000AbCdEAAV"))
    [payment] = queued(redis_client, "payment")
    assert payment["headers"]["trace_key"] == "erp:Payment Entry:ACC-PAY-2026-00001"
    [order] = queued(redis_client, "order")
    assert order["headers"]["task"] == "o2c.order.sync_status"
    assert order["headers"]["trace_key"] == "0065g00000AbCdEAAV"


def test_a_new_modification_of_the_same_document_is_a_new_event(erp_receiver, redis_client):
    post(erp_receiver, event())
    changed = json.loads(event())
    changed["modified"] = "2026-11-28 11:00:00.000001"
    post(erp_receiver, json.dumps(changed).encode())
    assert len(queued(redis_client, "invoice")) == 2


@pytest.mark.parametrize("secret", ["wrong-secret", ""])
def test_bad_signature_is_401_and_changes_nothing(erp_receiver, redis_client, secret):
    status, _, _ = post(erp_receiver, event(), secret=secret)
    assert status == 401
    assert redis_client.dbsize() == 0


def test_unconfigured_secret_refuses_every_event(receiver, redis_client):
    status, _, body = post(receiver, event())
    assert status == 401
    assert b"not configured" in body
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("body", [b"not json", b'{"doctype": "Sales Invoice"}', b"[]"])
def test_malformed_event_is_400(erp_receiver, redis_client, body):
    assert post(erp_receiver, body)[0] == 400
    assert redis_client.dbsize() == 0


def test_unrouted_event_is_acknowledged_and_dead_lettered(erp_receiver, redis_client):
    status, _, answer = post(erp_receiver, event("Delivery Note", "DN-0001"))
    assert (status, json.loads(answer)["status"]) == (200, "unrouted")
    store = DeadLetterStore(redis_client, prefix="o2c")
    [entry] = store.many(store.ids(category="unrouted"))
    assert "Delivery Note" in entry.message
