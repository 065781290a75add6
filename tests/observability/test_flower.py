"""Flower as the Procfile runs it: basic auth from the environment, persistent state, task
events, and task arguments in their short safe form (never the payload)."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager

import pytest
import requests

from config import load_settings
from o2c_workers import app as celery_app
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.celery_app import DOMAINS
from o2c_workers.delivery.census import census
from o2c_workers.dev.fleet import Fleet
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.dlq import ops
from o2c_workers.enqueue import MessageFactory
from o2c_workers.receiver.replan import build_dlq
from tests.observability.tasks import EMAIL
from tests.plugins.workers import ROOT, wait_for
from tests.probe_tasks import PROBE_KEY

AUTH = ("ops", "flower-pass-0bs")
CHAIN = ("o2c.customer.probe_step", "o2c.pricing.probe_step", "o2c.order.probe_step")
TRACE = "0065g00000000F1AAA"


def wait_for_quietly(predicate, *, timeout_s: float):  # type: ignore[no-untyped-def]
    """``predicate()``'s first truthy value within ``timeout_s``, else None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    return None


def enqueue(client, trace_key: str, payload: dict, argsrepr: str) -> str:  # type: ignore[no-untyped-def]
    msg = MessageFactory(celery_app).build(CHAIN[0], args=[payload], trace_key=trace_key,
                                           then=CHAIN[1:], argsrepr=argsrepr)
    AtomicWriter(client).run([Item(["always"], [msg.push_op()])])
    return msg.task_id


def flower_tasks(url: str, trace_key: str) -> dict:
    found = requests.get(f"{url}/api/tasks", auth=AUTH, timeout=10).json()
    return {i: t for i, t in found.items() if trace_key in (t.get("args") or "")}


def whole_chain(url: str, trace_key: str) -> dict | None:
    mine = flower_tasks(url, trace_key)
    done = [t for t in mine.values() if t.get("state") == "SUCCESS" and t.get("name")]
    return mine if len(done) == 3 else None


@contextmanager
def flower_and_worker(redis_url, redis_client, tmp_path):  # type: ignore[no-untyped-def]
    """A worker and Flower, once Flower's event stream is live: ``(url, worker list)``."""
    env = {**os.environ, "O2C_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    fleet = Fleet(env=env, log_dir=tmp_path / "logs")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        worker = fleet.start_worker("customer,pricing,order", concurrency=2, name="obs",
                                    extra=["-I", "tests.probe_tasks"])
        fleet.start_flower(port, auth=":".join(AUTH), db_path=tmp_path / "flower.db")
        worker.wait_ready()
        assert requests.get(f"{url}/api/workers", timeout=10).status_code == 401
        workers = wait_for(lambda: requests.get(f"{url}/api/workers", auth=AUTH,
                                                params={"refresh": "true"}, timeout=20).json(),
                           timeout_s=30, interval_s=1, what="Flower to list the worker")

        # Warm-up chains until Flower shows one whole: its event stream is then live (events
        # sent before its receiver connected are never seen), before the chain we look at.
        def warm_up() -> bool:
            key = f"0065g0000000W{next(counter):02d}AAA"
            enqueue(redis_client, key, {}, f"<Opportunity {key}>")
            return bool(wait_for_quietly(lambda: whole_chain(url, key), timeout_s=4))

        counter = iter(range(100))
        wait_for(warm_up, timeout_s=60, interval_s=0, what="Flower to see a whole chain")
        yield url, workers
    finally:
        fleet.stop()


@pytest.mark.slow
def test_flower_needs_auth_and_lists_workers_and_tasks_without_payloads(
        redis_url, redis_client, tmp_path):
    with flower_and_worker(redis_url, redis_client, tmp_path) as (url, workers):
        assert requests.get(f"{url}/api/tasks", timeout=10).status_code == 401
        assert requests.get(f"{url}/api/tasks", auth=(AUTH[0], "wrong"),
                            timeout=10).status_code == 401
        enqueue(redis_client, TRACE, {"fail": {"pricing": 1}, "contact": {"Email": EMAIL}},
                f"<Opportunity {TRACE}>")
        found = wait_for(lambda: whole_chain(url, TRACE), timeout_s=30, interval_s=0.5,
                         what="Flower to see the chain")
        everything = requests.get(f"{url}/api/tasks", auth=AUTH, timeout=10).text
    assert any(name.startswith("obs@") for name in workers)
    by_name = {t["name"]: t for t in found.values()}
    assert sorted(by_name) == sorted(CHAIN)
    # The receiver's short form, then Celery's own publishes (the chain's next steps and the
    # retry, which keeps its task id) in the form the publish handler writes.
    assert by_name[CHAIN[0]]["args"] == f"<Opportunity {TRACE}>"
    assert by_name[CHAIN[1]]["args"] == f"<{CHAIN[1]} {TRACE}>"
    assert by_name[CHAIN[1]]["retries"] == 1
    assert by_name[CHAIN[2]]["args"] == f"<{CHAIN[2]} {TRACE}>"
    assert {t["kwargs"] for t in found.values()} == {"{}"}
    assert EMAIL not in everything
    assert (tmp_path / "flower.db").exists() or list(tmp_path.glob("flower.db*"))


@pytest.mark.slow
def test_a_dead_lettered_task_ends_failed_with_its_category_and_its_requeue_is_a_new_task(
        redis_url, redis_client, tmp_path):
    trace = "0065g00000000F2AAA"
    dlq = build_dlq(load_settings(redis_url=redis_url), client=redis_client, actor="support")
    with flower_and_worker(redis_url, redis_client, tmp_path) as (url, _):
        enqueue(redis_client, trace, {"fail": {"pricing": "business"},
                                      "contact": {"Email": EMAIL}}, f"<Opportunity {trace}>")
        [entry_id] = wait_for(lambda: dlq.store.ids(trace_key=trace), what="a dead letter")

        def ended(state: str, task_id: str | None = None) -> dict | None:
            # A requeue's arguments read "<requeue of dead letter …>": found by its id.
            found = requests.get(f"{url}/api/tasks", auth=AUTH, timeout=10).json()
            return next((t for i, t in found.items()
                         if t.get("name") == CHAIN[1] and t.get("state") == state
                         and (i == task_id if task_id else trace in (t.get("args") or ""))),
                        None)

        failed = wait_for(lambda: ended("FAILURE"), timeout_s=30, interval_s=0.5,
                          what="Flower to show the dead-lettered step failed")
        assert failed["exception"] == (
            f"DeadLettered('dead-lettered credit_hold (Finance): BusinessError; "
            f"o2c dlq show {entry_id}')")
        assert EMAIL not in str(failed)
        # Acked, not retried, not redelivered: the step ran once and nothing is left held.
        time.sleep(1.0)
        assert census(redis_client, "o2c", DOMAINS).total == 0
        steps = [json.loads(c)["task"] for c in redis_client.lrange(PROBE_KEY, 0, -1)
                 if json.loads(c)["trace_key"] == trace]
        assert steps == [CHAIN[0], CHAIN[1]]
        assert failed["retries"] == 0

        ops.edit(dlq, entry_id, sets=["fail={}"])
        requeued = ops.requeue_one(dlq, entry_id)["task_id"]
        again = wait_for(lambda: ended("SUCCESS", requeued), timeout_s=30, interval_s=0.5,
                         what="Flower to show the requeued step as a new task")
        assert again["args"] == f"<requeue of dead letter {entry_id}>"
        assert requeued != failed["uuid"]
        assert ended("FAILURE", failed["uuid"])


@pytest.mark.slow
def test_flower_shows_how_many_messages_wait_on_each_queue(redis_url, redis_client, tmp_path):
    """Flower's broker view reads the queues' lengths: it knows ``redis://`` brokers, not
    the class path of the fleet's transport, so Flower runs kombu's own (it takes no task)."""
    with flower_and_worker(redis_url, redis_client, tmp_path) as (url, _):
        for n in range(6):  # two run (concurrency 2) for 20 s, four wait on "customer"
            enqueue(redis_client, f"0065g00000000Q{n}AAA",
                    {"sleep": {"customer": 20}}, f"<Opportunity {n}>")

        def waiting() -> dict | None:
            answer = requests.get(f"{url}/api/queues/length", auth=AUTH, timeout=10)
            assert answer.status_code == 200, answer.text
            lengths = {q["name"]: q["messages"] for q in answer.json()["active_queues"]}
            return lengths if lengths.get("customer") == 4 else None

        lengths = wait_for(waiting, timeout_s=20, interval_s=0.5,
                           what="Flower to count the waiting messages")
    assert lengths == {"customer": 4, "pricing": 0, "order": 0}
