"""The base task and signals with real workers: trace keys, retries, dead letters."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from o2c_workers import app as celery_app
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.delivery.census import census
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.enqueue import MessageFactory
from tests.helpers import queued
from tests.plugins.workers import ROOT, start_worker, wait_for, worker_env
from tests.probe_tasks import PROBE_KEY
from tests.restartable import restartable_redis  # noqa: F401

CHAIN = ("o2c.customer.probe_step", "o2c.pricing.probe_step", "o2c.order.probe_step")
TRACE = "0065g0000000001AAA"


def enqueue(client, payload, *, trace_key=TRACE):
    msg = MessageFactory(celery_app).build(CHAIN[0], args=[payload], trace_key=trace_key,
                                           then=CHAIN[1:])
    assert AtomicWriter(client).run([Item(["always"], [msg.push_op()])]) == [True]


def calls(client):
    return [json.loads(raw) for raw in client.lrange(PROBE_KEY, 0, -1)]


@pytest.mark.slow
def test_trace_key_travels_through_every_step_and_retry(redis_url, redis_client, workers):
    workers.append(start_worker(redis_url, include="tests.probe_tasks"))
    enqueue(redis_client, {"trace_key": "not-the-header", "fail": {"pricing": 2}})
    seen = wait_for(lambda: [c for c in calls(redis_client) if c["task"] == CHAIN[2]],
                    what="the last step")
    assert seen
    history = calls(redis_client)
    assert [c["task"] for c in history] == [CHAIN[0], CHAIN[1], CHAIN[1], CHAIN[1], CHAIN[2]]
    assert [c["retries"] for c in history] == [0, 0, 1, 2, 0]
    assert {c["trace_key"] for c in history} == {TRACE}
    logged = [json.loads(line) for line in workers[0].log_lines() if line.startswith("{")]
    from_tasks = [entry for entry in logged if entry.get("task", "").startswith("o2c.")]
    assert from_tasks
    assert {entry["trace_key"] for entry in from_tasks} == {TRACE}


@pytest.mark.slow
def test_business_error_dead_letters_at_once_and_stops_the_chain(redis_url, redis_client,
                                                                  workers):
    workers.append(start_worker(redis_url, include="tests.probe_tasks"))
    enqueue(redis_client, {"fail": {"pricing": "business"},
                           "contact": {"Email": "jane.doe@example.com", "Name": "Jane"}})
    store = DeadLetterStore(redis_client, prefix="o2c")
    [entry_id] = wait_for(lambda: store.ids(trace_key=TRACE), what="a dead letter")
    entry = store.get(entry_id)
    assert entry.category == "credit_hold"
    assert entry.task == CHAIN[1]
    assert entry.attempts == 1
    assert entry.chain == [CHAIN[2]]
    assert "BusinessError" in entry.traceback
    assert entry.args[0]["seen"] == ["customer"]
    assert entry.args[0]["contact"] == {"Email": "[redacted]", "Name": "Jane"}
    assert entry.payload["contact"]["Email"] == "[redacted]"
    assert [c["task"] for c in calls(redis_client)] == [CHAIN[0], CHAIN[1]]


@pytest.mark.slow
def test_retries_exhausted_dead_letter_with_attempt_count(redis_url, redis_client, workers):
    workers.append(start_worker(redis_url, include="tests.probe_tasks"))
    enqueue(redis_client, {"fail": {"customer": 99}})
    store = DeadLetterStore(redis_client, prefix="o2c")
    [entry_id] = wait_for(lambda: store.ids(category="exhausted"), what="a dead letter")
    entry = store.get(entry_id)
    assert entry.attempts == 3
    assert entry.error_class == "Transient"
    assert entry.chain == list(CHAIN[1:])
    assert len(calls(redis_client)) == 3


@pytest.mark.slow
def test_a_redis_restart_mid_task_loses_nothing(restartable_redis, workers):  # noqa: F811
    """Redis (with its append-only file) stops while a step runs and comes back: the
    retry publishes once Redis answers again, and the chain completes."""
    server, client = restartable_redis, restartable_redis.client
    try:
        workers.append(start_worker(server.url, include="tests.probe_tasks"))
        enqueue(client, {"sleep": {"customer": 3}, "fail": {"customer": 1}})
        wait_for(lambda: calls(client), what="the first step to start")
        server.stop()
        time.sleep(2)
        client = server.start()
        done = wait_for(lambda: [c for c in calls(client) if c["task"] == CHAIN[2]],
                        timeout_s=60, what="the chain to complete after the restart")
        assert len(done) == 1
        assert {c["trace_key"] for c in calls(client)} == {TRACE}
    finally:
        for worker in workers:
            worker.stop()
        workers.clear()


@pytest.mark.slow
def test_a_step_killed_by_its_hard_time_limit_is_dead_lettered(redis_url, redis_client,
                                                                 workers):
    workers.append(start_worker(redis_url, include="tests.probe_tasks"))
    msg = MessageFactory(celery_app).build("o2c.order.probe_hang", args=[{"trace_key": TRACE}],
                                           trace_key=TRACE)
    AtomicWriter(redis_client).run([Item(["always"], [msg.push_op()])])
    store = DeadLetterStore(redis_client, prefix="o2c")
    [entry_id] = wait_for(lambda: store.ids(trace_key=TRACE), what="a dead letter")
    entry = store.get(entry_id)
    assert (entry.category, entry.error_class, entry.task) == (
        "timeout", "TimeLimitExceeded", "o2c.order.probe_hang")
    assert entry.args == [{"trace_key": TRACE}]
    wait_for(lambda: census(redis_client, "o2c", ["order"]).total == 0,
             what="the message to be acked")
    assert redis_client.llen("order") == 0


PUBLISHER = """
import sys
from o2c_workers import app
app.send_task("o2c.customer.ensure_customer", args=[{"n": 1}], queue="customer")
print("published", flush=True)
sys.stdin.readline()  # the test stops Redis, then says go
app.send_task("o2c.customer.ensure_customer", args=[{"n": 2}], queue="customer")
print("published", flush=True)
"""


@pytest.mark.slow
def test_a_publish_while_redis_is_down_waits_and_lands_once_it_is_back(restartable_redis):  # noqa: F811
    """The publish retry policy rides out a Redis restart instead of losing the message."""
    server = restartable_redis
    publisher = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER], cwd=ROOT, env=worker_env(server.url),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert publisher.stdout is not None and publisher.stdin is not None
        assert publisher.stdout.readline().strip() == "published"
        server.stop()
        publisher.stdin.write("go\n")
        publisher.stdin.flush()
        time.sleep(2)
        assert publisher.poll() is None, "the publish gave up while Redis was down"
        client = server.start()
        out, err = publisher.communicate(timeout=30)
        assert publisher.returncode == 0, err[-2000:]
        assert out.strip() == "published"
        assert sorted(m["args"][0]["n"] for m in queued(client, "customer")) == [1, 2]
    finally:
        publisher.kill()
        publisher.communicate()  # reaps it and closes its pipes
