"""Flower as the Procfile runs it: basic auth from the environment, persistent state, task
events, and task arguments in their short safe form (never the payload)."""

from __future__ import annotations

import os
import time

import pytest
import requests

from o2c_workers import app as celery_app
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.dev.fleet import Fleet
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.enqueue import MessageFactory
from tests.observability.tasks import EMAIL
from tests.plugins.workers import ROOT, wait_for

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


@pytest.mark.slow
def test_flower_needs_auth_and_lists_workers_and_tasks_without_payloads(
        redis_url, redis_client, tmp_path):
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
        assert requests.get(f"{url}/api/tasks", timeout=10).status_code == 401
        assert requests.get(f"{url}/api/tasks", auth=(AUTH[0], "wrong"),
                            timeout=10).status_code == 401
        workers = wait_for(lambda: requests.get(f"{url}/api/workers", auth=AUTH,
                                                params={"refresh": "true"}, timeout=20).json(),
                           timeout_s=30, interval_s=1, what="Flower to list the worker")

        def enqueue(trace_key: str, payload: dict, argsrepr: str) -> None:
            msg = MessageFactory(celery_app).build(CHAIN[0], args=[payload],
                                                   trace_key=trace_key, then=CHAIN[1:],
                                                   argsrepr=argsrepr)
            AtomicWriter(redis_client).run([Item(["always"], [msg.push_op()])])

        def tasks(trace_key: str) -> dict | None:
            found = requests.get(f"{url}/api/tasks", auth=AUTH, timeout=10).json()
            mine = {i: t for i, t in found.items() if trace_key in (t.get("args") or "")}
            done = [t for t in mine.values() if t.get("state") == "SUCCESS" and t.get("name")]
            return mine if len(done) == 3 else None

        # Warm-up chains until Flower shows one whole: its event stream is then live (events
        # sent before its receiver connected are never seen), before the chain we look at.
        def warm_up() -> bool:
            key = f"0065g0000000W{next(counter):02d}AAA"
            enqueue(key, {}, f"<Opportunity {key}>")
            return bool(wait_for_quietly(lambda: tasks(key), timeout_s=4))

        counter = iter(range(100))
        wait_for(warm_up, timeout_s=60, interval_s=0, what="Flower to see a whole chain")
        enqueue(TRACE, {"fail": {"pricing": 1}, "contact": {"Email": EMAIL}},
                f"<Opportunity {TRACE}>")

        found = wait_for(lambda: tasks(TRACE), timeout_s=30, interval_s=0.5,
                         what="Flower to see the chain")
        everything = requests.get(f"{url}/api/tasks", auth=AUTH, timeout=10).text
    finally:
        fleet.stop()
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
