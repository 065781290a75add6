"""Poison messages, with a real worker whose pool process a step SIGKILLs: counted in Redis
across the crashes, dead-lettered ``worker_lost`` after ``O2C_MAX_WORKER_LOST`` (3)."""

from __future__ import annotations

import json

import pytest

from o2c_workers import app as celery_app
from o2c_workers import keys
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.delivery.census import census
from o2c_workers.enqueue import MessageFactory
from tests.plugins.workers import start_worker, wait_for
from tests.probe_tasks import PROBE_KEY

TASK = "o2c.order.probe_kill"
POISON = "0065g00000000K1AAA"
ONCE = "0065g00000000K2AAA"


def runs(client, trace_key: str) -> int:
    return sum(1 for raw in client.lrange(PROBE_KEY, 0, -1)
               if json.loads(raw)["trace_key"] == trace_key)


def enqueue(client, trace_key: str, payload: dict) -> str:
    msg = MessageFactory(celery_app).build(TASK, args=[{"trace_key": trace_key, **payload}],
                                           trace_key=trace_key)
    AtomicWriter(client).run([Item(["always"], [msg.push_op()])])
    return msg.task_id


@pytest.mark.slow
def test_a_message_that_kills_its_process_is_dead_lettered_after_three_and_not_run_again(
        redis_url, redis_client, workers, store):
    workers.append(start_worker(redis_url, queues="order", concurrency=1,
                                include="tests.dlq.tasks"))
    task_id = enqueue(redis_client, POISON, {})
    [entry_id] = wait_for(lambda: store.ids(trace_key=POISON), timeout_s=60,
                          what="the poison message dead-lettered")
    entry = store.get(entry_id)
    assert (entry.category, entry.error_class, entry.task) == ("worker_lost", "WorkerLost", TASK)
    assert entry.args == [{"trace_key": POISON}]
    assert entry.attempts == 3
    assert "lost 3 times in a row" in entry.message
    assert "signal 9 (SIGKILL)" in entry.message
    assert entry.remediation.startswith("Integration team: ")
    wait_for(lambda: census(redis_client, "o2c", ["order"]).total == 0,
             what="the message to be acked")
    assert runs(redis_client, POISON) == 3  # never a fourth time
    assert not redis_client.exists(keys.worker_lost("o2c", task_id))

    # One that dies once and then succeeds is not dead-lettered, and leaves no count.
    task_id = enqueue(redis_client, ONCE, {"die": 1})
    wait_for(lambda: runs(redis_client, ONCE) == 2 and census(
        redis_client, "o2c", ["order"]).total == 0, timeout_s=30, what="the second run done")
    wait_for(lambda: not redis_client.exists(keys.worker_lost("o2c", task_id)),
             what="its count dropped")
    assert store.ids(trace_key=ONCE) == []
