"""The base task's attempts and waits with a real worker: every attempt of the policy is
made, a wait spends none, and a wait has a bound."""

from __future__ import annotations

import json
import time

import orjson
import pytest
import redis

from o2c_workers import app as celery_app
from o2c_workers import keys
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.enqueue import MessageFactory
from o2c_workers.waiting import WAITING_SINCE_HEADER, WAITS_HEADER
from tests.plugins.workers import start_worker, wait_for
from tests.probe_tasks import PROBE_KEY

pytestmark = pytest.mark.slow

PREFIX = "o2c"


def enqueue(client: redis.Redis, task: str, trace_key: str, *, headers: dict | None = None,
            **payload: object) -> None:
    msg = MessageFactory(celery_app).build(task, args=[{"trace_key": trace_key, **payload}],
                                           trace_key=trace_key)
    envelope = msg.envelope
    if headers:
        decoded = orjson.loads(envelope)
        decoded["headers"].update(headers)
        envelope = orjson.dumps(decoded).decode()
    assert AtomicWriter(client).run([Item(["always"], [["LPUSH", msg.key, envelope]])]) == [True]


def runs(client: redis.Redis, trace_key: str) -> list[dict]:
    return [c for c in (json.loads(raw) for raw in client.lrange(PROBE_KEY, 0, -1))
            if c["trace_key"] == trace_key]


def test_attempts_waits_and_the_bound_on_waiting(redis_url, redis_client, workers) -> None:
    worker = start_worker(redis_url, include="tests.probe_tasks", queues="order")
    workers.append(worker)
    store = DeadLetterStore(redis_client, prefix=PREFIX)
    # Six attempts under its policy, each failing: more than Celery's default max_retries.
    enqueue(redis_client, "o2c.order.probe_six", "0065g00000000A6AAA", fail={"order": 99})
    # Held back three times under a policy of three attempts: waits, never attempts.
    enqueue(redis_client, "o2c.order.probe_step", "0065g00000000W3AAA",
            throttle={"order": 3})
    # Held back after a day of waiting already: past O2C_MAX_WAIT_H (24 h).
    enqueue(redis_client, "o2c.order.probe_step", "0065g00000000W9AAA",
            throttle={"order": 10_000},
            headers={WAITS_HEADER: 500, WAITING_SINCE_HEADER: time.time() - 25 * 3600})

    wait_for(lambda: len(store.ids()) >= 2 and runs(redis_client, "0065g00000000W3AAA")
             and len(runs(redis_client, "0065g00000000W3AAA")) >= 4,
             timeout_s=30, what="two dead letters and the waiting step done")
    time.sleep(0.5)

    six = runs(redis_client, "0065g00000000A6AAA")
    assert [r["retries"] for r in six] == [0, 1, 2, 3, 4, 5]
    [exhausted] = store.many(store.ids(category="exhausted"))
    assert exhausted.trace_key == "0065g00000000A6AAA" and exhausted.attempts == 6

    waited = runs(redis_client, "0065g00000000W3AAA")
    assert [(r["retries"], r["waits"]) for r in waited] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert not store.ids(trace_key="0065g00000000W3AAA")
    txn = redis_client.hgetall(keys.transaction(PREFIX, "0065g00000000W3AAA"))
    assert txn.get(b"waits") == b"3" and b"retries" not in txn

    [throttled] = store.many(store.ids(category="throttled"))
    assert throttled.trace_key == "0065g00000000W9AAA" and throttled.attempts == 1
    assert throttled.error_class == "Throttled"
    assert len(store.ids()) == 2
