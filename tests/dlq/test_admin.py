"""``/admin/dlq`` on the receiver, called as a WSGI callable against real Redis."""

from __future__ import annotations

import json

import pytest

from config import load_settings
from o2c_workers import app as celery_app
from o2c_workers.dlq import Status
from o2c_workers.receiver.app import Receiver
from tests import soapmsg
from tests.dlq.conftest import ADMIN, TOKEN, worker_entry
from tests.helpers import call_wsgi

AUTH = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}


def call(receiver, method, path, data=None, *, query="", headers=AUTH):
    body = json.dumps(data).encode() if data is not None else b""
    status, _, raw = call_wsgi(receiver, method, path, body, query=query, headers=headers)
    return status, json.loads(raw)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/admin/dlq"), ("GET", "/admin/dlq/stats"), ("GET", "/admin/dlq/x"),
    ("PATCH", "/admin/dlq/x"), ("POST", "/admin/dlq/x/requeue"),
    ("POST", "/admin/dlq/requeue"), ("POST", "/admin/dlq/purge")])
def test_every_endpoint_needs_the_admin_token(receiver, method, path):
    for headers in ({}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Basic {ADMIN}"}):
        status, body = call(receiver, method, path, headers=headers)
        assert status == 401, (headers, body)
    status, _, _ = call_wsgi(receiver, method, path, query=f"token={TOKEN}")
    assert status == 401


def test_the_api_is_absent_without_a_configured_token(redis_url, redis_client):
    settings = load_settings(redis_url=redis_url, webhook_token=TOKEN,
                             salesforce_org_ids=[soapmsg.ORG_ID])
    bare = Receiver(settings, redis_client=redis_client, celery_app=celery_app)
    assert call(bare, "GET", "/admin/dlq")[0] == 404
    assert call(bare, "GET", "/admin/dlq/stats", headers={})[0] == 404


def test_list_filters_and_pages(receiver, store):
    holds = [store.add(worker_entry(n)) for n in range(3)]
    other = store.add(worker_entry(5, category="exhausted", domain="order"))
    status, body = call(receiver, "GET", "/admin/dlq", query="category=credit_hold&limit=2")
    assert status == 200
    assert [e["id"] for e in body["entries"]] == [holds[0].id, holds[1].id]
    assert (body["total"], body["next_offset"]) == (3, 2)
    _, body = call(receiver, "GET", "/admin/dlq",
                   query=f"domain=order&since=1h&trace_key={other.trace_key}&status=open")
    assert [e["id"] for e in body["entries"]] == [other.id]
    status, body = call(receiver, "GET", "/admin/dlq", query="since=soon")
    assert status == 400 and "30m" in body["error"]


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=1000000", "offset=-1",
                                   "limit=ten"])
def test_a_page_out_of_bounds_is_refused(receiver, store, query):
    store.add(worker_entry(1))
    status, body = call(receiver, "GET", "/admin/dlq", query=query)
    assert status == 400
    assert "limit" in body["error"]
    status, body = call(receiver, "GET", "/admin/dlq", query="limit=500")
    assert status == 200 and body["total"] == 1


def test_show_stats_and_unknown_ids(receiver, store):
    entry = store.add(worker_entry(1))
    status, body = call(receiver, "GET", f"/admin/dlq/{entry.id}")
    assert status == 200
    assert body["entry"]["payload"] == entry.payload
    assert body["entry"]["traceback"].startswith("Traceback")
    assert body["history"] == []
    _, stats = call(receiver, "GET", "/admin/dlq/stats")
    assert stats["by_status"]["open"] == 1
    assert stats["open_by_category"] == {"credit_hold": 1}
    assert stats["oldest_open"]["id"] == entry.id
    assert call(receiver, "GET", "/admin/dlq/nope")[0] == 404
    assert call(receiver, "DELETE", f"/admin/dlq/{entry.id}")[0] == 405
    assert call(receiver, "GET", "/admin/dlq/a/b/c")[0] == 404


def test_patch_validates_then_requeue_one(receiver, store, redis_client):
    entry = store.add(worker_entry(1, payload={
        "sobject_type": "Opportunity", "record": {"Id": "0065g0000000001", "Amount": "1.0"}}))
    status, body = call(receiver, "PATCH", f"/admin/dlq/{entry.id}",
                        {"set": {"record.Amount": "many"}})
    assert status == 422 and "Amount" in body["error"]
    assert store.get(entry.id).rev == entry.rev
    status, body = call(receiver, "PATCH", f"/admin/dlq/{entry.id}",
                        {"set": {"record.Amount": "12.5"}})
    assert status == 200
    assert body["entry"]["payload"]["record"]["Amount"] == "12.5"
    assert body["entry"]["original_payload"]["record"]["Amount"] == "1.0"
    status, body = call(receiver, "POST", f"/admin/dlq/{entry.id}/requeue")
    assert status == 200 and body["requeued"]["queue"] == "pricing"
    assert redis_client.llen("pricing") == 1
    status, body = call(receiver, "POST", f"/admin/dlq/{entry.id}/requeue")
    assert status == 409 and "not open" in body["error"]
    _, shown = call(receiver, "GET", f"/admin/dlq/{entry.id}")
    assert [h["action"] for h in shown["history"]] == ["requeue", "edit"]
    assert {h["actor"] for h in shown["history"]} == {"admin-api"}


def test_bulk_requeue_by_filter(receiver, store, redis_client):
    holds = [store.add(worker_entry(n)) for n in range(2)]
    store.add(worker_entry(5, category="exhausted", domain="order"))
    assert call(receiver, "POST", "/admin/dlq/requeue", {})[0] == 400
    status, body = call(receiver, "POST", "/admin/dlq/requeue",
                        {"category": "credit_hold", "dry_run": True})
    assert (status, body["count"], body["dry_run"]) == (200, 2, True)
    assert redis_client.llen("pricing") == 0
    _, body = call(receiver, "POST", "/admin/dlq/requeue", {"category": "credit_hold"})
    assert sorted(d["id"] for d in body["done"]) == sorted(e.id for e in holds)
    assert redis_client.llen("pricing") == 2


def test_purge_needs_confirmation_and_leaves_an_audit_record(receiver, store):
    entries = [store.add(worker_entry(n)) for n in range(3)]
    ids = [entries[0].id, entries[1].id]
    status, body = call(receiver, "POST", "/admin/dlq/purge", {"ids": ids})
    assert status == 400 and "confirm" in body["error"]
    assert store.ids() == [e.id for e in entries]
    status, body = call(receiver, "POST", "/admin/dlq/purge",
                        {"ids": ids, "confirm": True, "reason": "duplicates of a test deal"})
    assert (status, body["count"]) == (200, 2)
    assert store.ids() == [entries[2].id]
    assert store.get(ids[0]).status is Status.PURGED
    [record] = store.audit_log(entry_id=ids[0])
    assert (record["action"], record["actor"]) == ("purge", "admin-api")
    assert record["detail"]["reason"] == "duplicates of a test deal"


def test_exact_routes_still_win_over_the_prefix(receiver):
    assert call_wsgi(receiver, "GET", "/healthz")[0] == 200
    assert call_wsgi(receiver, "GET", "/admin/dlqx", headers=AUTH)[0] == 404
