"""Requeue against real Redis and a real worker: atomic, at most once, and resolved later."""

from __future__ import annotations

import json
import threading

import pytest
import redis

from o2c_workers import app as celery_app
from o2c_workers import keys, timeline
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.dlq import Status, ops
from o2c_workers.dlq.errors import Conflict, InvalidEdit, Refused
from o2c_workers.dlq.query import Filter
from o2c_workers.enqueue import MessageFactory
from o2c_workers.receiver.replan import build_dlq
from tests import soapmsg
from tests.dlq.conftest import worker_entry
from tests.helpers import call_wsgi, queued
from tests.plugins.workers import start_worker, wait_for
from tests.probe_tasks import PROBE_KEY

CHAIN = ("o2c.customer.probe_step", "o2c.pricing.probe_step", "o2c.order.probe_finish")
TRACE = "0065g0000000001AAA"


def audit_actions(store, entry_id):
    return [r["action"] for r in store.audit_log(entry_id=entry_id)]


@pytest.mark.slow
def test_worker_entry_edited_and_requeued_completes_its_chain_and_is_resolved(
        redis_url, redis_client, workers, dlq, store):
    workers.append(start_worker(redis_url, include="tests.probe_tasks,tests.dlq.tasks"))
    msg = MessageFactory(celery_app).build(CHAIN[0], args=[{"fail": {"pricing": "business"}}],
                                           trace_key=TRACE, then=CHAIN[1:])
    AtomicWriter(redis_client).run([Item(["always"], [msg.push_op()])])
    [entry_id] = wait_for(lambda: store.ids(trace_key=TRACE), what="a dead letter")
    entry = store.get(entry_id)
    assert (entry.task, entry.chain, entry.category) == (CHAIN[1], [CHAIN[2]], "credit_hold")

    edited = ops.edit(dlq, entry_id, sets=["fail={}"])
    assert edited.payload == {"fail": {}, "seen": ["customer"]}
    assert edited.args == [edited.payload]
    assert edited.original_payload == entry.payload

    outcome = ops.requeue_one(dlq, entry_id)
    assert (outcome["task"], outcome["queue"]) == (CHAIN[1], "pricing")
    done = wait_for(lambda: store.get(entry_id).status is Status.RESOLVED,
                    what="the entry resolved by its step's success")
    assert done
    final = store.get(entry_id)
    # The requeued run of the step that failed is the success that resolves it.
    assert final.requeued_task_id == outcome["task_id"]
    assert final.resolved_by == outcome["task_id"]
    wait_for(lambda: redis_client.llen(PROBE_KEY) == 4, what="the rest of the chain")
    calls = [json.loads(c) for c in redis_client.lrange(PROBE_KEY, 0, -1)]
    assert [c["task"] for c in calls] == [CHAIN[0], CHAIN[1], CHAIN[1], CHAIN[2]]
    assert {c["trace_key"] for c in calls} == {TRACE}
    events = [e["event"] for e in timeline.read(redis_client, "o2c", TRACE)]
    assert events[-2:] == ["requeued", "dead_letter_resolved"]
    assert timeline.milestones(redis_client, "o2c", TRACE)["requeues"] == 1
    assert audit_actions(store, entry_id) == ["requeue", "edit"]


def test_requeue_puts_task_args_chain_and_trace_key_on_the_queue(redis_client, dlq, store):
    entry = store.add(worker_entry(1, trace_key=TRACE))
    ops.requeue_one(dlq, entry.id)
    [message] = queued(redis_client, "pricing")
    assert message["headers"]["task"] == "o2c.pricing.probe_step"
    assert message["headers"]["trace_key"] == TRACE
    assert message["args"] == entry.args
    assert [s["task"] for s in message["embed"]["chain"]] == ["o2c.order.probe_finish"]
    assert store.ids() == []
    assert store.ids(status=Status.REQUEUED) == [entry.id]
    with pytest.raises(Conflict, match="requeued, not open"):
        ops.requeue_one(dlq, entry.id)
    assert redis_client.llen("pricing") == 1


def test_a_requeue_that_fails_inside_its_write_changes_nothing(redis_client, dlq, store):
    entry = store.add(worker_entry(1, trace_key=TRACE))
    redis_client.set("pricing", "not a list")  # the LPUSH fails inside the script
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        ops.requeue_one(dlq, entry.id)
    after = store.get(entry.id)
    assert (after.status, after.rev, after.requeued_task_id) == (Status.OPEN, entry.rev, None)
    assert store.ids() == [entry.id]
    assert audit_actions(store, entry.id) == []
    assert "requeues" not in timeline.milestones(redis_client, "o2c", TRACE)
    report = ops.requeue(dlq, [entry.id])
    assert report.done == [] and "WRONGTYPE" in report.refused[0]["reason"]

    redis_client.delete("pricing")
    ops.requeue_one(dlq, entry.id)
    assert redis_client.llen("pricing") == 1
    assert store.get(entry.id).status is Status.REQUEUED


def test_two_operators_requeueing_at_once_enqueue_once(redis_url, settings, redis_client, store):
    entries = [store.add(worker_entry(n)) for n in range(20)]
    operators = [build_dlq(settings, client=redis.Redis.from_url(redis_url),
                                       actor=f"op{n}") for n in range(2)]
    for entry in entries:
        barrier = threading.Barrier(2)
        results: list[str] = []

        def go(dlq, entry_id=entry.id, barrier=barrier, results=results):
            barrier.wait()
            try:
                ops.requeue_one(dlq, entry_id)
                results.append("requeued")
            except Conflict:
                results.append("conflict")

        threads = [threading.Thread(target=go, args=(op,)) for op in operators]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["conflict", "requeued"]
    assert redis_client.llen("pricing") == len(entries)
    assert sum(int(v) for k, v in redis_client.hgetall(
        keys.transaction("o2c", entries[0].trace_key)).items() if k == b"requeues") == 1
    for op in operators:
        op.store.client.close()


def test_bulk_requeue_by_filter_with_dry_run_and_summary(redis_client, dlq, store):
    holds = [store.add(worker_entry(n)) for n in range(3)]
    store.add(worker_entry(9, category="exhausted", domain="order"))
    dry = ops.requeue(dlq, where=Filter(category="credit_hold"), dry_run=True)
    assert [d["id"] for d in dry.done] == [e.id for e in holds]
    assert redis_client.llen("pricing") == 0 and len(store.ids()) == 4
    ticks: list[int] = []
    report = ops.requeue(dlq, where=Filter(category="credit_hold"), progress=ticks.append)
    assert (len(report.done), report.refused, len(ticks)) == (3, [], 3)
    assert redis_client.llen("pricing") == 3
    assert store.ids(category="exhausted") and not store.ids(category="credit_hold")


def post_invalid_opportunity(receiver, index=7):
    fields = soapmsg.opportunity(index, Amount="lots")
    body = soapmsg.envelope([soapmsg.notification(soapmsg.notification_id(index),
                                                  "Opportunity", fields)])
    status, _, _ = call_wsgi(receiver, "POST", "/salesforce/outbound", body,
                             query="token=s3cret-webhook-token")
    assert status == 200


def test_receiver_entry_requeues_after_its_notification_is_edited(receiver, redis_client, dlq,
                                                                  store):
    post_invalid_opportunity(receiver)
    [entry_id] = store.ids(category="invalid_payload")
    with pytest.raises(Refused, match="still invalid_payload: Opportunity failed validation"):
        ops.requeue_one(dlq, entry_id)
    assert store.get(entry_id).status is Status.OPEN

    ops.edit(dlq, entry_id, sets=["record.Amount=45000.0"])
    outcome = ops.requeue_one(dlq, entry_id)
    assert outcome["task"] == "o2c.customer.ensure_customer"
    [message] = queued(redis_client, "customer")
    assert message["headers"]["trace_key"] == "0065g0000000007AAA"
    assert message["args"][0]["record"]["Amount"] == "45000.0"
    assert message["args"][0]["notification_id"] == soapmsg.notification_id(7)
    assert store.get(entry_id).status is Status.REQUEUED


def test_unrouted_entry_is_refused_with_the_reason_and_stays_open(receiver, dlq, store,
                                                                   redis_client):
    body = soapmsg.envelope([soapmsg.notification(
        "04l5g0000000010", "Contact", {"Id": "0035g00000XyZzY", "LastName": "Doe"})])
    call_wsgi(receiver, "POST", "/salesforce/outbound", body, query="token=s3cret-webhook-token")
    [entry_id] = store.ids(category="unrouted")
    report = ops.requeue(dlq, [entry_id])
    assert report.refused == [{"id": entry_id, "reason": "still unrouted: no route for Contact"}]
    assert store.get(entry_id).status is Status.OPEN
    assert redis_client.llen("customer") == 0


def test_invalid_edits_are_refused_and_change_nothing(receiver, dlq, store):
    post_invalid_opportunity(receiver)
    [receiver_id] = store.ids(category="invalid_payload")
    before = store.get(receiver_id)
    with pytest.raises(InvalidEdit, match="Amount"):
        ops.edit(dlq, receiver_id, sets=["record.Amount=still-lots"])
    with pytest.raises(InvalidEdit, match="does not parse"):
        ops.edit(dlq, receiver_id, sets=["raw=<Notification><Id>1</Id>"])
    worker = store.add(worker_entry(1, payload={
        "sobject_type": "Opportunity", "record": {"Id": "0065g0000000001", "Amount": "1.0"}}))
    with pytest.raises(InvalidEdit, match="Opportunity does not validate: Amount"):
        ops.edit(dlq, worker.id, sets=["record.Amount=abc"])
    with pytest.raises(InvalidEdit, match="cannot become a list"):
        ops.edit(dlq, worker.id, payload=[1, 2])
    assert store.get(receiver_id) == before
    assert store.get(worker.id).rev == worker.rev
    assert store.audit_log() == []


def test_edits_keep_secrets_masked_and_the_first_original(dlq, store):
    entry = store.add(worker_entry(1))
    ops.edit(dlq, entry.id, sets=["note=first", "password=hunter2"])
    ops.edit(dlq, entry.id, sets=["note=second"])
    after = store.get(entry.id)
    assert after.payload["password"] == "[redacted]"
    assert after.payload["note"] == "second"
    assert after.original_payload == entry.payload
    assert [r["detail"]["paths"] for r in store.audit_log(entry_id=entry.id)] == [
        ["note"], ["note", "password"]]


def test_erp_event_entry_requeues_through_the_receivers_routes(dlq, store, redis_client):
    from o2c_workers.dlq import DeadLetter

    entry = store.add(DeadLetter(
        trace_key="erp:Sales Invoice:ACC-SINV-0001", domain="receiver", source="receiver",
        payload={"event": "on_cancel", "doctype": "Sales Invoice", "name": "ACC-SINV-0001",
                 "modified": "2026-11-20 10:00:00"},
        error_class="Unrouted", category="unrouted", message="no route"))
    with pytest.raises(Refused, match="still unrouted"):
        ops.requeue_one(dlq, entry.id)
    ops.edit(dlq, entry.id, sets=["event=on_submit"])
    outcome = ops.requeue_one(dlq, entry.id)
    assert (outcome["task"], outcome["queue"]) == ("o2c.invoice.sync_invoice", "invoice")
    [message] = queued(redis_client, "invoice")
    assert message["args"][0]["name"] == "ACC-SINV-0001"
