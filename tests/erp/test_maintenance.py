"""The ERP's maintenance window pauses the whole fleet, limits configured or not: the worker
that meets the 503 sets the pause, the others wait at the limiter instead of each calling
the ERP and failing. Against the ERP simulator over HTTP and real Redis; the assertions read
the simulator's own record of calls."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import pytest
import redis

from config.settings import Settings
from o2c_workers import keys
from o2c_workers.erp import ErpNextAdapter, QuickRetry
from o2c_workers.erp.http import DEFAULT_MAINTENANCE_S, MAINTENANCE, map_error
from o2c_workers.errors import O2CError, Throttled, Transient
from o2c_workers.ratelimit import Limiter, NullLimiter
from o2c_workers.sandbox.erp.errors import FrappeError
from tests.erp.support import (
    api_calls,
    make_adapter,
    sandbox,
    settings_for,
    start_erp,
)

__all__ = ["make_adapter", "start_erp"]

ONE_TRY = QuickRetry(attempts=1)
#: The limits a deployment may set; the pause must work under each, and under none.
LIMITS = [pytest.param({}, id="no-limit"),
          pytest.param({"erp_rate_limit": "50/second", "erp_max_concurrency": 4},
                       id="rate-and-concurrency")]


def fleet_settings(erp: Any, **limits: Any) -> Settings:
    return settings_for(erp, key_prefix=f"t{uuid.uuid4().hex[:8]}", **limits)


def worker_adapter(make_adapter: Any, settings: Settings, client: redis.Redis,
                   **options: Any) -> ErpNextAdapter:
    """An adapter as a worker process builds it: the fleet's limiter, in Redis."""
    return make_adapter(settings, limiter=Limiter.from_settings(client, settings), **options)


@pytest.mark.parametrize("limits", LIMITS)
def test_a_maintenance_503_pauses_the_fleet_and_another_worker_waits_it_out(
        start_erp, make_adapter, redis_client: redis.Redis, limits: dict[str, Any]) -> None:
    erp = start_erp(faults={"maintenance_for_s": 2})
    settings = fleet_settings(erp, **limits)
    first = worker_adapter(make_adapter, settings, redis_client, retry=ONE_TRY)
    with pytest.raises(Transient) as caught:
        first.known_items(["GW-200"])
    error = caught.value
    assert type(error) is Transient and error.retryable
    assert (error.status, error.reason, error.retry_after_s) == (503, MAINTENANCE, 2.0)
    pause_key = keys.limiter_pause(settings.key_prefix, "erp")
    assert 1500 < redis_client.pttl(pause_key) <= 2000
    assert redis_client.get(pause_key) == b"erp maintenance (503)"

    other = worker_adapter(make_adapter, settings, redis_client, retry=ONE_TRY)
    started = time.monotonic()
    assert other.known_items(["GW-200"]) == {"GW-200"}
    assert time.monotonic() - started >= 1.4
    refused, answered = api_calls(erp)
    # The other worker never met the maintenance: its one call came once the window had
    # ended (the simulator would have refused it inside).
    assert (refused["status"], refused["fault"]) == (503, "maintenance")
    assert answered["status"] == 200
    assert answered["time"] >= refused["time"] + 1.5
    assert sandbox(erp, "stats")["faults_injected"] == {"maintenance": 1}


def test_a_window_longer_than_a_task_waits_defers_the_others_without_a_call(
        start_erp, make_adapter, redis_client: redis.Redis) -> None:
    erp = start_erp(faults={"maintenance_for_s": 30})
    settings = fleet_settings(erp)
    first = worker_adapter(make_adapter, settings, redis_client, retry=ONE_TRY)
    with pytest.raises(Transient):
        first.known_items(["GW-200"])
    others = [worker_adapter(make_adapter, settings, redis_client) for _ in range(3)]
    started = time.monotonic()
    for adapter in others:
        with pytest.raises(Throttled) as caught:
            adapter.known_items(["GW-200"])
        # Given back at once (its Celery retry waits the window out), not after 5 s.
        assert caught.value.reason == "limiter:pause"
        assert 28 < caught.value.retry_after_s <= 30
    assert time.monotonic() - started < 1.0
    assert len(api_calls(erp)) == 1


@pytest.mark.parametrize("limits", LIMITS)
def test_calls_and_warnings_during_a_window_are_bounded(
        start_erp, make_adapter, redis_client: redis.Redis, limits: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    erp = start_erp()
    settings = fleet_settings(erp, **limits)
    workers = [worker_adapter(make_adapter, settings, redis_client, retry=ONE_TRY)
               for _ in range(6)]
    caplog.set_level(logging.WARNING)
    sandbox(erp, "faults", {"maintenance_for_s": 3})
    outcomes = hammer(workers, for_s=4.0)
    calls = api_calls(erp)
    refused = [c for c in calls if c["status"] == 503]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    print(f"\n{len(calls)} calls, {len(refused)} refused for maintenance, "
          f"{len(warnings)} warnings; outcomes {outcomes}")
    # Each worker can be past the limiter with a call in flight when the pause is set, at
    # most; after that every one of them waits at the limiter until the window ends.
    assert 1 <= len(refused) <= len(workers)
    assert refused[-1]["time"] - refused[0]["time"] < 0.5
    assert all(c["status"] == 200 for c in calls if c["time"] > refused[-1]["time"])
    # One warning for the answer, one for the pause it sets: none per waiting worker.
    assert len(warnings) <= 2 * len(refused)
    assert outcomes["ok"] > 0


def test_without_a_shared_pause_every_worker_finds_out_on_its_own(
        start_erp, make_adapter) -> None:
    """The same load with no Redis to share a pause in (the ``NullLimiter``): what the
    fleet did before, and what the bound above is measured against."""
    erp = start_erp()
    settings = settings_for(erp)
    workers = [make_adapter(settings, limiter=NullLimiter(), retry=ONE_TRY) for _ in range(6)]
    sandbox(erp, "faults", {"maintenance_for_s": 1.5})
    hammer(workers, for_s=2.0)
    refused = [c for c in api_calls(erp) if c["status"] == 503]
    assert len(refused) > 4 * len(workers)


def hammer(workers: list[ErpNextAdapter], *, for_s: float) -> dict[str, int]:
    """Each worker reads in a loop for ``for_s``, trying again 0.1 s after any failure
    (the short countdown each task used to retry on)."""
    deadline = time.monotonic() + for_s
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def work(adapter: ErpNextAdapter) -> None:
        while time.monotonic() < deadline:
            try:
                adapter.known_items(["GW-200"])
                outcome = "ok"
            except O2CError:
                outcome = "failed"
                time.sleep(0.1)
            with lock:
                counts[outcome] += 1

    threads = [threading.Thread(target=work, args=(adapter,)) for adapter in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return counts


def test_a_plain_503_is_transient_and_pauses_no_one(start_erp, make_adapter,
                                                    redis_client: redis.Redis) -> None:
    # An overloaded or broken ERP answers 503 with no Retry-After and no maintenance shape:
    # that is one call's failure, retried by its own task.
    erp = start_erp(faults={"error_rate": 1.0, "error_status": 503})
    settings = fleet_settings(erp)
    adapter = worker_adapter(make_adapter, settings, redis_client, retry=ONE_TRY)
    with pytest.raises(Transient) as caught:
        adapter.known_items(["GW-200"])
    assert (caught.value.status, caught.value.reason) == (503, "http_503")
    assert caught.value.retry_after_s is None
    assert not redis_client.exists(keys.limiter_pause(settings.key_prefix, "erp"))


@pytest.mark.parametrize(("exc_type", "retry_after", "reason", "expected_after_s"), [
    ("SessionStopped", None, MAINTENANCE, DEFAULT_MAINTENANCE_S),
    ("SessionStopped", 42.0, MAINTENANCE, 42.0),
    ("InternalServerError", 7.0, MAINTENANCE, 7.0),
    ("InternalServerError", None, "http_503", None),
])
def test_what_counts_as_maintenance(exc_type: str, retry_after: float | None, reason: str,
                                    expected_after_s: float | None) -> None:
    """Frappe in maintenance mode answers 503 ``SessionStopped`` (the simulator adds
    Retry-After); a proxy's maintenance page gives 503 with Retry-After alone."""
    body = FrappeError(503, exc_type, "The system is being updated.").body()
    error = map_error("GET", "/api/resource/Item", 503, body, retry_after)
    assert type(error) is Transient
    assert (error.reason, error.retry_after_s) == (reason, expected_after_s)
