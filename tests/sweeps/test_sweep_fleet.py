"""The sweep with the real fleet: Salesforce drops a day of notifications the receiver
refused, and the sweep books every one of them once; a sweep and late notifications of the
same wins at the same moment book one order each; two beat processes send each sweep once."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from o2c_workers import timeline
from o2c_workers.dev import procfile
from o2c_workers.dev.fleet import Fleet
from o2c_workers.dev.procfile import ProcessType
from o2c_workers.sweeps import state
from o2c_workers.sweeps.run import run_sweeps
from tests.e2e.conftest import TOKEN, o2c_factory  # noqa: F401 - the fleet fixture
from tests.plugins.workers import LOG_DIR, wait_for, worker_env

#: Salesforce's 24 hours of retries pass in 3 real seconds.
TIME_SCALE = 86_400 / 3


def opening_events(o2c: Any, trace_key: str) -> list[str]:
    return [e["event"] for e in timeline.read(o2c.redis, "o2c", trace_key)
            if e["event"] in timeline.OPENING_EVENTS]


def orders_of(o2c: Any, opportunities: list[str]) -> dict[str, int]:
    orders = o2c.sales_orders_by_opportunity()
    return {o: len(orders.get(o, [])) for o in opportunities}


@pytest.mark.slow
def test_a_day_of_dropped_notifications_is_booked_by_the_sweep_once_each(
        o2c_factory: Any, sweeping_on: Any) -> None:  # noqa: F811
    o2c = o2c_factory(world_args={"opportunities": 26, "accounts": 8},
                      sf={"time_scale": TIME_SCALE})
    sender = o2c.sandbox.salesforce.simulator.sender
    sender.set_endpoint(f"{o2c.receiver_url}/salesforce/outbound?token=wrong")
    opportunities, late = o2c.ok_opportunities()[:20], o2c.ok_opportunities()[20:24]
    assert len(opportunities) == 20 and len(late) == 4
    o2c.win(opportunities)
    wait_for(lambda: sender.snapshot()["dropped"] == 20 and not sender.snapshot()["pending"],
             timeout_s=30, what="Salesforce to drop every notification after its 24 hours")
    assert all(timeline.read(o2c.redis, "o2c", o) == [] for o in opportunities)

    # The receiver is back; nothing will ever be resent. The sweep finds them.
    sender.set_endpoint(f"{o2c.receiver_url}/salesforce/outbound?token={TOKEN}")
    sweeping = sweeping_on(o2c.sandbox)
    result = run_sweeps(sweeping.sweeper)
    assert result.sweeps[0].counts == {"started": 20}
    o2c.wait_written_back(opportunities, timeout_s=90)
    o2c.wait_settled()
    assert orders_of(o2c, opportunities) == dict.fromkeys(opportunities, 1)
    assert all(opening_events(o2c, o) == ["swept"] for o in opportunities)

    # Written back, they are no longer asked for: one page, nothing started.
    again = run_sweeps(sweeping.sweeper)
    assert (again.sweeps[0].seen, again.sweeps[0].api_calls) == (0, 1)

    # Four more won while Salesforce holds their notifications; they arrive late, at the
    # moment the sweep runs: one chain, one order each.
    sender.set_endpoint(None)
    o2c.win(late)
    race(o2c, sweeping, late)
    o2c.wait_written_back(late)
    o2c.wait_settled()
    assert orders_of(o2c, [*opportunities, *late]) == dict.fromkeys([*opportunities, *late], 1)
    for opportunity in late:
        assert len(opening_events(o2c, opportunity)) == 1
        events = [e["event"] for e in timeline.read(o2c.redis, "o2c", opportunity)]
        assert events.count("order_submitted") == 1, "one chain ran"


def race(o2c: Any, sweeping: Any, opportunities: list[str]) -> None:
    """Post each opportunity's notification while a sweep runs, spread over its few
    milliseconds (before it reads Redis, between its read and its write, after)."""
    bodies = [sweeping.notification(o) for o in opportunities]
    gate = threading.Barrier(len(bodies) + 1)
    answers: list[int] = []

    def notify(body: bytes, delay_s: float) -> None:
        gate.wait()
        time.sleep(delay_s)
        answers.append(requests.post(
            f"{o2c.receiver_url}/salesforce/outbound?token={TOKEN}", data=body, timeout=10,
            headers={"Content-Type": "text/xml; charset=UTF-8"}).status_code)

    threads = [threading.Thread(target=notify, args=(b, n * 0.005))
               for n, b in enumerate(bodies)]
    for thread in threads:
        thread.start()
    gate.wait()
    run_sweeps(sweeping.sweeper)
    for thread in threads:
        thread.join()
    assert answers == [200] * len(bodies)


@pytest.mark.slow
def test_two_beat_processes_started_at_once_send_each_sweep_once(
        sandbox: Any, redis_url: str, redis_client: Any) -> None:
    interval_s = 1  # the subject of this test; the shipped default is 300
    env = worker_env(redis_url, **sandbox.env(), O2C_SWEEP_INTERVAL_S=str(interval_s),
                     PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    fleet = Fleet(env, log_dir=LOG_DIR / f"beat-{time.monotonic_ns()}")
    try:
        worker = fleet.start_worker("sweep", concurrency=1, name="sweeper")
        worker.wait_ready()
        # The Procfile's own beat line, twice, as a second host (or a mistake) would.
        beat = procfile.load()["beat"]
        beats = [fleet.start_process_type(ProcessType(f"beat{n}", beat.command),
                                          cwd=procfile.PROJECT_PROCFILE.parent)
                 for n in range(2)]
        wait_for(lambda: any("Acquired lock" in b.log_text() for b in beats), timeout_s=30,
                 what="one beat to take the lease")
        started = time.monotonic()
        time.sleep(4 * interval_s)
        elapsed = time.monotonic() - started
        runs = state.read_status(redis_client, "o2c")["opportunities"].runs
        sent = [b.log_text().count("Sending due task") for b in beats]
        intervals = elapsed / interval_s
        # One beat sends every sweep, the other none; each sent sweep runs once.
        assert 0 in sent and sum(sent) <= intervals + 2, sent
        assert intervals - 2 <= runs <= intervals + 2, (runs, intervals)
        assert "another sweep holds the lease" not in worker.log_text()
        assert [("Acquired lock" in b.log_text()) for b in beats].count(True) == 1
        # The schedule and the lease live under the key schema's beat prefix.
        assert redis_client.exists("o2c:beat::lock", "o2c:beat:salesforce-sweep") == 2
    finally:
        fleet.stop()
