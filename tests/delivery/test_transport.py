"""Reliable delivery with real workers and shipped defaults: each crash window, forced.

Every test runs with the default ``O2C_REDELIVERY_AFTER_S`` (30 s) and the default
visibility timeout (1 h): a message that came back only through kombu's visibility sweep
would fail them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from config import Settings
from o2c_workers import app as celery_app
from o2c_workers import keys
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.delivery.census import census
from o2c_workers.enqueue import MessageFactory
from tests.plugins.workers import ROOT, start_worker, wait_for, worker_env
from tests.probe_tasks import PROBE_KEY
from tests.proxy import CuttingProxy
from tests.restartable import restartable_redis  # noqa: F401

pytestmark = pytest.mark.slow

REDELIVERY_S = Settings.model_fields["redelivery_after_s"].default
#: What a loaded machine may add to the bound: a keeper tick, a worker's poll, the step.
SLACK_S = 5.0


def enqueue(client: redis.Redis, trace_key: str, task: str = "o2c.customer.probe_step",
            **payload: object) -> None:
    msg = MessageFactory(celery_app).build(task, args=[{"trace_key": trace_key, **payload}],
                                           trace_key=trace_key)
    assert AtomicWriter(client).run([Item(["always"], [msg.push_op()])]) == [True]


def runs(client: redis.Redis, trace_key: str) -> list[dict[str, object]]:
    calls = [json.loads(raw) for raw in client.lrange(PROBE_KEY, 0, -1)]
    return [c for c in calls if c["trace_key"] == trace_key]


def held(client: redis.Redis) -> int:
    return census(client, "o2c", []).held


def test_a_reply_lost_with_its_connection_is_delivered_again(redis_server, redis_url,
                                                             redis_client, workers):
    """Redis moved the message to the worker, and the connection broke before the worker
    read the reply. kombu's stock BRPOP loses such a message for good."""
    db = redis_url.rsplit("/", 1)[1]
    proxy = CuttingProxy(int(redis_server.url.rsplit(":", 1)[1].split("/")[0]), b"CUT-ME")
    try:
        workers.append(start_worker(f"{proxy.url}/{db}", include="tests.probe_tasks"))
        enqueue(redis_client, "CUT-ME")
        assert proxy.cut.wait(15), "the worker never took the message"
        started = time.monotonic()
        wait_for(lambda: runs(redis_client, "CUT-ME"), timeout_s=REDELIVERY_S + SLACK_S,
                 what="the message to run after the reset")
        assert time.monotonic() - started < REDELIVERY_S
        time.sleep(2)
        assert len(runs(redis_client, "CUT-ME")) == 1
        wait_for(lambda: held(redis_client) == 0, what="nothing held")
    finally:
        for worker in workers:
            worker.stop()
        workers.clear()
        proxy.close()


TAKER = """
import sys, time
from o2c_workers import app
with app.connection_for_read() as conn:
    message = conn.default_channel.basic_get("customer")
    print("took" if message is not None else "nothing", flush=True)
    time.sleep(600)
"""


def test_a_consumer_killed_between_taking_and_starting_loses_nothing(redis_url, redis_client,
                                                                      workers):
    enqueue(redis_client, "TAKEN")
    taker = subprocess.Popen([sys.executable, "-c", TAKER], cwd=ROOT, env=worker_env(redis_url),
                             stdout=subprocess.PIPE, text=True)
    assert taker.stdout is not None and taker.stdout.readline().strip() == "took"
    assert redis_client.llen("customer") == 0 and held(redis_client) == 1
    os.kill(taker.pid, signal.SIGKILL)
    taker.wait()
    killed = time.monotonic()
    workers.append(start_worker(redis_url, include="tests.probe_tasks"))
    wait_for(lambda: runs(redis_client, "TAKEN"), timeout_s=REDELIVERY_S + SLACK_S,
             what="the taken message to come back")
    assert time.monotonic() - killed < REDELIVERY_S + SLACK_S
    time.sleep(2)
    assert len(runs(redis_client, "TAKEN")) == 1


def test_a_node_killed_with_work_held_loses_none(redis_url, redis_client, workers):
    """Two nodes each hold a long step; one is SIGKILLed (its main process and pool). A new
    node runs the dead node's message again within the redelivery bound; the live node's
    message is never taken from it; the queued ones run once each."""
    doomed = start_worker(redis_url, include="tests.probe_tasks", concurrency=1)
    alive = start_worker(redis_url, include="tests.probe_tasks", concurrency=1)
    workers += [doomed, alive]
    for trace in ("LONG-1", "LONG-2"):
        enqueue(redis_client, trace, sleep_once={"customer": 300})
    wait_for(lambda: held(redis_client) == 2, what="each node to take one long step")
    # The node that will run the dead one's step is up before the kill, so the bound below
    # measures the redelivery, not a worker's start on a loaded machine.
    workers.append(start_worker(redis_url, include="tests.probe_tasks", concurrency=2))
    for trace in ("QUEUED-1", "QUEUED-2"):
        enqueue(redis_client, trace)
    doomed.kill()
    killed = time.monotonic()
    workers.remove(doomed)
    traces = ("LONG-1", "LONG-2", "QUEUED-1", "QUEUED-2")
    wait_for(lambda: sum(len(runs(redis_client, t)) for t in traces) == 5,
             timeout_s=REDELIVERY_S + SLACK_S, what="the dead node's step to run again")
    assert time.monotonic() - killed < REDELIVERY_S + SLACK_S
    time.sleep(3)
    counts = sorted(len(runs(redis_client, t)) for t in traces)
    assert counts == [1, 1, 1, 2]
    assert held(redis_client) == 1  # the live node's long step, still its own


def test_a_long_step_is_never_taken_from_its_live_holder(redis_url, redis_client, workers):
    workers.append(start_worker(redis_url, include="tests.probe_tasks", concurrency=1))
    workers.append(start_worker(redis_url, include="tests.probe_tasks", concurrency=1))
    enqueue(redis_client, "LONG", sleep_once={"customer": REDELIVERY_S + 10})
    wait_for(lambda: runs(redis_client, "LONG"), what="the step to start")
    time.sleep(REDELIVERY_S + 5)
    assert len(runs(redis_client, "LONG")) == 1
    assert held(redis_client) == 1


def test_a_retry_countdown_waits_in_redis_not_in_the_worker(redis_url, redis_client, workers):
    workers.append(start_worker(redis_url, include="tests.probe_tasks"))
    enqueue(redis_client, "LATER", task="o2c.customer.probe_countdown")
    delayed = keys.delivery_delayed("o2c")
    wait_for(lambda: redis_client.zcard(delayed) == 1, what="the retry to be parked")
    assert held(redis_client) == 0  # the worker holds nothing while the retry waits
    [(member, due_ms)] = redis_client.zrange(delayed, 0, -1, withscores=True)
    assert member.startswith(b"customer\n")
    assert 5_000 < due_ms - time.time() * 1000 <= 8_000
    wait_for(lambda: len(runs(redis_client, "LATER")) == 2, timeout_s=15,
             what="the retry to run when due")
    time.sleep(1)
    assert [c["retries"] for c in runs(redis_client, "LATER")] == [0, 1]
    assert redis_client.zcard(delayed) == 0


def test_redis_killed_with_work_held_and_parked_loses_nothing(restartable_redis, workers):  # noqa: F811
    """Redis (append-only file) is SIGKILLed while one step runs, one is held by a busy
    worker and a retry is parked, then restarted 2 s later: each runs to the end, with the
    default visibility timeout, long before it could have mattered."""
    server, client = restartable_redis, restartable_redis.client
    try:
        workers.append(start_worker(server.url, include="tests.probe_tasks", concurrency=2))
        enqueue(client, "PARKED", task="o2c.customer.probe_countdown")
        enqueue(client, "RUNNING", sleep_once={"customer": 8})
        enqueue(client, "HELD", sleep_once={"customer": 8})
        enqueue(client, "WAITING")
        wait_for(lambda: client.zcard(keys.delivery_delayed("o2c")) == 1
                 and runs(client, "RUNNING") and runs(client, "HELD"),
                 what="two steps running and a retry parked")
        assert client.llen("customer") == 1
        time.sleep(1.5)  # past the append-only file's once-a-second fsync
        server.kill()
        time.sleep(2)
        client = server.start()
        restarted = time.monotonic()
        wait_for(lambda: runs(client, "WAITING") and len(runs(client, "PARKED")) == 2
                 and held(client) == 0 and client.llen("customer") == 0,
                 timeout_s=REDELIVERY_S + SLACK_S, what="every message to run after the restart")
        assert time.monotonic() - restarted < REDELIVERY_S
        time.sleep(2)
        assert len(runs(client, "WAITING")) == 1
        assert len(runs(client, "PARKED")) == 2
        # The running steps were cancelled with the connection and ran again, or finished.
        assert 1 <= len(runs(client, "RUNNING")) <= 2 and 1 <= len(runs(client, "HELD")) <= 2
        assert held(client) == 0
    finally:
        for worker in workers:
            worker.stop()
        workers.clear()
