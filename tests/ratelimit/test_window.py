"""The limiter's strategies and the limiter itself, in one process, on real Redis."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import pytest
import redis

from config.settings import load_settings
from o2c_workers import keys
from o2c_workers.errors import Throttled
from o2c_workers.ratelimit import (
    ConcurrencyLimit,
    Limiter,
    MovingWindow,
    NullLimiter,
    RedisBackend,
    Strategy,
)

StrategyFactory = Callable[[redis.Redis, str, int, float], Strategy]


def moving_window(client: redis.Redis, prefix: str, limit: int, period_s: float) -> Strategy:
    return MovingWindow(RedisBackend(client), prefix=prefix, name="erp", limit=limit,
                        window_s=period_s, margin_s=0.0)


def concurrency(client: redis.Redis, prefix: str, limit: int, period_s: float) -> Strategy:
    return ConcurrencyLimit(RedisBackend(client), prefix=prefix, name="erp", limit=limit,
                            lease_ttl_s=period_s)


ALL = [moving_window, concurrency]
RATE = [moving_window]


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def token() -> str:
    return uuid.uuid4().hex


def assert_every_key_expires(client: redis.Redis, prefix: str) -> list[bytes]:
    found = list(client.scan_iter(f"{prefix}:*"))
    for key in found:
        assert client.pttl(key) > 0, key
    return found


# --- the contract every strategy keeps ---------------------------------------------------


@pytest.mark.parametrize("make", ALL)
def test_grants_up_to_the_limit_then_says_how_long_to_wait(make: StrategyFactory,
                                                           redis_client: redis.Redis,
                                                           prefix: str) -> None:
    strategy = make(redis_client, prefix, 3, 1.0)
    assert [strategy.try_acquire("default", token()).ok for _ in range(3)] == [True] * 3
    refused = strategy.try_acquire("default", token())
    assert not refused.ok
    assert 0 < refused.wait_s <= 1.0
    assert 0 < refused.expected_s <= 1.0
    assert strategy.in_use("default") == 3


@pytest.mark.parametrize("make", ALL)
def test_buckets_are_independent(make: StrategyFactory, redis_client: redis.Redis,
                                 prefix: str) -> None:
    strategy = make(redis_client, prefix, 1, 1.0)
    assert strategy.try_acquire("read", token()).ok
    assert not strategy.try_acquire("read", token()).ok
    assert strategy.try_acquire("write", token()).ok
    assert strategy.in_use("write") == 1


@pytest.mark.parametrize("make", ALL)
def test_every_key_lives_under_the_prefix_with_a_ttl(make: StrategyFactory,
                                                     redis_client: redis.Redis,
                                                     prefix: str) -> None:
    strategy = make(redis_client, prefix, 2, 2.0)
    strategy.try_acquire("default", token())
    strategy.try_acquire("default", token())
    strategy.try_acquire("default", token())
    found = assert_every_key_expires(redis_client, prefix)
    assert found and all(k.decode().startswith(f"{prefix}:limit:") for k in found)
    assert all(redis_client.pttl(k) <= 2000 for k in found)


@pytest.mark.parametrize("make", ALL)
def test_a_slot_comes_back_when_the_period_has_passed(make: StrategyFactory,
                                                      redis_client: redis.Redis,
                                                      prefix: str) -> None:
    strategy = make(redis_client, prefix, 1, 1.0)
    assert strategy.try_acquire("default", token()).ok
    refused = strategy.try_acquire("default", token())
    time.sleep(refused.expected_s + 0.01)
    assert strategy.try_acquire("default", token()).ok


# --- what differs between a spent request slot and a lease -------------------------------


@pytest.mark.parametrize("make", RATE)
def test_a_request_slot_is_spent_even_when_released(make: StrategyFactory,
                                                    redis_client: redis.Redis,
                                                    prefix: str) -> None:
    strategy = make(redis_client, prefix, 1, 1.0)
    first = token()
    assert strategy.try_acquire("default", first).ok
    strategy.release("default", first)
    assert not strategy.try_acquire("default", token()).ok


def test_a_released_lease_is_free_at_once(redis_client: redis.Redis, prefix: str) -> None:
    strategy = concurrency(redis_client, prefix, 1, 30.0)
    first = token()
    assert strategy.try_acquire("default", first).ok
    assert not strategy.try_acquire("default", token()).ok
    strategy.release("default", first)
    assert strategy.in_use("default") == 0
    assert strategy.try_acquire("default", token()).ok


def test_a_renewed_lease_outlives_its_first_ttl(redis_client: redis.Redis, prefix: str) -> None:
    strategy = concurrency(redis_client, prefix, 1, 0.3)
    lease = token()
    assert strategy.try_acquire("default", lease).ok
    time.sleep(0.2)
    strategy.renew("default", lease)
    time.sleep(0.2)
    assert strategy.in_use("default") == 1
    assert not strategy.try_acquire("default", token()).ok


def test_the_margin_lengthens_the_window(redis_client: redis.Redis, prefix: str) -> None:
    strategy = MovingWindow(RedisBackend(redis_client), prefix=prefix, name="erp", limit=1,
                            window_s=0.2, margin_s=0.1)
    assert strategy.try_acquire("default", token()).ok
    time.sleep(0.22)
    refused = strategy.try_acquire("default", token())
    assert not refused.ok
    assert 0 < refused.wait_s <= 0.09


# --- the limiter -------------------------------------------------------------------------


def make_limiter(client: redis.Redis, prefix: str, *, rate: tuple[int, float] | None = None,
                 concurrency_limit: int = 0, lease_ttl_s: float = 30.0) -> Limiter:
    backend = RedisBackend(client)
    strategies: list[Strategy] = []
    if rate:
        strategies.append(MovingWindow(backend, prefix=prefix, name="erp", limit=rate[0],
                                       window_s=rate[1], margin_s=0.0))
    if concurrency_limit:
        strategies.append(ConcurrencyLimit(backend, prefix=prefix, name="erp",
                                           limit=concurrency_limit, lease_ttl_s=lease_ttl_s))
    return Limiter(backend, strategies, prefix=prefix)


def test_leases_come_before_request_slots(redis_client: redis.Redis, prefix: str) -> None:
    limiter = make_limiter(redis_client, prefix, rate=(5, 1.0), concurrency_limit=2)
    assert [s.kind for s in limiter.strategies] == ["concurrency", "rate"]


def test_acquire_waits_for_the_window_then_proceeds(redis_client: redis.Redis, prefix: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    limiter = make_limiter(redis_client, prefix, rate=(2, 0.5))
    caplog.set_level(logging.INFO, logger="o2c.limiter")
    for _ in range(2):
        with limiter.acquire(timeout_s=1.0) as permit:
            assert permit.waited_s < 0.1
    started = time.monotonic()
    with limiter.acquire(timeout_s=1.0) as permit:
        waited = time.monotonic() - started
    assert 0.4 <= waited < 0.6
    assert permit.waited_s == pytest.approx(waited, abs=0.02)
    assert limiter.stats.acquires == 3
    assert limiter.stats.waits == 1
    assert limiter.stats.wait_seconds == pytest.approx(waited, abs=0.02)
    assert any("waited" in r.getMessage() for r in caplog.records)


def test_a_wait_longer_than_the_timeout_throttles_at_once(redis_client: redis.Redis,
                                                          prefix: str,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    limiter = make_limiter(redis_client, prefix, rate=(2, 1.0))
    with limiter.acquire(timeout_s=0), limiter.acquire(timeout_s=0):
        pass
    started = time.monotonic()
    with pytest.raises(Throttled) as caught, limiter.acquire(timeout_s=0.3):
        pytest.fail("granted beyond the limit")
    assert time.monotonic() - started < 0.25  # gave up at once, not after its 0.3 s
    assert caught.value.retryable
    assert 0.8 < caught.value.retry_after_s <= 1.0
    assert limiter.stats.throttles == 1
    assert any(r.levelno == logging.WARNING and "no rate slot" in r.getMessage()
               for r in caplog.records)


def test_a_concurrency_timeout_comes_after_waiting(redis_client: redis.Redis,
                                                   prefix: str) -> None:
    limiter = make_limiter(redis_client, prefix, concurrency_limit=1, lease_ttl_s=5.0)
    with limiter.acquire(timeout_s=0):
        assert limiter.stats.leases == 1
        started = time.monotonic()
        with pytest.raises(Throttled) as caught, limiter.acquire(timeout_s=0.3):
            pass
        assert 0.25 <= time.monotonic() - started < 0.5
        assert 4.0 < caught.value.retry_after_s <= 5.0
        assert limiter.usage().in_flight == 1
    assert limiter.usage().in_flight == 0
    assert limiter.stats.leases == 0


def test_a_rate_timeout_gives_back_the_lease_taken_before(redis_client: redis.Redis,
                                                          prefix: str) -> None:
    limiter = make_limiter(redis_client, prefix, rate=(1, 1.0), concurrency_limit=2)
    with limiter.acquire(timeout_s=0):
        pass
    with pytest.raises(Throttled), limiter.acquire(timeout_s=0.1):
        pass
    assert limiter.usage().in_flight == 0
    assert limiter.stats.leases == 0


def test_the_lease_is_given_back_when_the_call_fails(redis_client: redis.Redis,
                                                     prefix: str) -> None:
    limiter = make_limiter(redis_client, prefix, concurrency_limit=1)
    with pytest.raises(ZeroDivisionError), limiter.acquire(timeout_s=0):
        assert limiter.usage().in_flight == 1
        _ = 1 / 0
    assert limiter.usage().in_flight == 0
    with limiter.acquire(timeout_s=0):
        pass


def test_usage_reports_leases_window_and_pause(redis_client: redis.Redis, prefix: str) -> None:
    limiter = make_limiter(redis_client, prefix, rate=(10, 1.0), concurrency_limit=3)
    with limiter.acquire(timeout_s=0), limiter.acquire(timeout_s=0):
        limiter.pause(5.0)
        usage = limiter.usage()
    assert (usage.in_flight, usage.in_window) == (2, 2)
    assert 4.9 < usage.paused_s <= 5.0
    assert limiter.usage("write").in_window == 0
    assert_every_key_expires(redis_client, prefix)


def test_a_pause_holds_acquirers_back(redis_client: redis.Redis, prefix: str,
                                      caplog: pytest.LogCaptureFixture) -> None:
    limiter = make_limiter(redis_client, prefix, concurrency_limit=5)
    assert limiter.pause(0.3, reason="429 from ERP") == pytest.approx(0.3)
    started = time.monotonic()
    with limiter.acquire(timeout_s=1.0):
        assert time.monotonic() - started >= 0.29
    assert limiter.stats.pauses == 1
    assert any("paused" in r.getMessage() and "429" in r.getMessage()
               for r in caplog.records)


def test_a_shorter_pause_never_shortens_a_longer_one(redis_client: redis.Redis,
                                                     prefix: str) -> None:
    limiter = make_limiter(redis_client, prefix, concurrency_limit=5)
    limiter.pause(1.0)
    assert limiter.pause(0.2) > 0.9
    assert limiter.usage().paused_s > 0.9
    assert limiter.pause(2.0) == pytest.approx(2.0)
    pttl = redis_client.pttl(keys.limiter_pause(prefix, "erp"))
    assert 1900 < pttl <= 2000


def test_a_pause_longer_than_the_timeout_throttles(redis_client: redis.Redis,
                                                   prefix: str) -> None:
    limiter = make_limiter(redis_client, prefix, rate=(10, 1.0))
    limiter.pause(2.0)
    with pytest.raises(Throttled) as caught, limiter.acquire(timeout_s=0.5):
        pass
    assert 1.8 < caught.value.retry_after_s <= 2.0
    assert caught.value.reason == "limiter:pause"
    assert limiter.usage().in_window == 0


# --- built from the settings -------------------------------------------------------------


def test_from_settings_builds_both_limits(redis_client: redis.Redis, prefix: str) -> None:
    settings = load_settings(erp_rate_limit="20/second", erp_max_concurrency=4,
                             key_prefix=prefix, erp_connect_timeout_s=3.0, erp_timeout_s=10.0)
    limiter = Limiter.from_settings(redis_client, settings)
    assert isinstance(limiter, Limiter)
    lease, window = limiter.strategies
    assert isinstance(lease, ConcurrencyLimit) and isinstance(window, MovingWindow)
    assert (lease.limit, lease.lease_ttl_s) == (4, 18.0)
    assert (window.limit, window.window_s, window.margin_s) == (20, 1, 0.05)
    with limiter.acquire(timeout_s=0):
        assert redis_client.exists(keys.limiter_slots(prefix, "erp", "default"))
    assert redis_client.exists(keys.limiter_rate(prefix, "erp", "default"))


def test_from_settings_with_only_a_rate(redis_client: redis.Redis, prefix: str) -> None:
    settings = load_settings(erp_rate_limit="100/minute", key_prefix=prefix)
    limiter = Limiter.from_settings(redis_client, settings)
    assert [s.kind for s in limiter.strategies] == ["rate"]
    with pytest.raises(ValueError):
        Limiter.from_settings(redis_client, load_settings(erp_rate_limit="lots"))


def test_no_limit_configured_still_holds_the_fleet_back_during_a_pause(
        redis_client: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(erp_rate_limit=None, erp_max_concurrency=0, key_prefix=prefix)
    limiter = Limiter.from_settings(redis_client, settings)
    other = Limiter.from_settings(redis_client, settings)  # another worker of the fleet
    assert limiter.strategies == []
    for _ in range(100):
        with limiter.acquire(timeout_s=0) as permit:
            assert permit.waited_s < 0.05
    assert limiter.stats.waits == 0
    assert list(redis_client.scan_iter(f"{prefix}:*")) == []  # nothing kept per call
    assert other.pause(0.3, reason="erp maintenance (503)") == pytest.approx(0.3)
    assert redis_client.get(keys.limiter_pause(prefix, "erp")) == b"erp maintenance (503)"
    started = time.monotonic()
    with limiter.acquire(timeout_s=1.0) as permit:
        assert time.monotonic() - started >= 0.29
    assert permit.waited_s >= 0.29 and limiter.usage().paused_s == 0
    other.pause(2.0, reason="erp maintenance (503)")
    caplog.set_level(logging.INFO, logger="o2c.limiter")
    caplog.clear()
    with pytest.raises(Throttled) as caught, limiter.acquire(timeout_s=0.5):
        pass
    assert caught.value.reason == "limiter:pause" and 1.8 < caught.value.retry_after_s <= 2.0
    # The pause was announced (a warning) once by the worker that set it; the tasks it
    # defers say so at INFO, or a window would log one warning per task.
    assert [r.levelno for r in caplog.records if r.name == "o2c.limiter"] == [logging.INFO]
    assert limiter.usage().in_flight == 0


def test_without_redis_the_null_limiter_grants_everything_at_once() -> None:
    limiter = NullLimiter()
    for _ in range(1000):
        with limiter.acquire(timeout_s=0) as permit:
            assert permit.waited_s == 0.0
    assert limiter.pause(30.0) == 0.0
    assert limiter.usage().in_flight == 0
