"""The fleet-wide limiter: wait out a pause, take a lease, then a request slot."""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import limits
import redis

from o2c_workers import keys, metrics
from o2c_workers.errors import Throttled
from o2c_workers.ratelimit.backend import Backend, RedisBackend
from o2c_workers.ratelimit.base import Strategy
from o2c_workers.ratelimit.concurrency import ConcurrencyLimit
from o2c_workers.ratelimit.stats import LimiterStats
from o2c_workers.ratelimit.window import MovingWindow

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("o2c.limiter")

#: The bucket of an acquire that names no endpoint class.
DEFAULT_KEY = "default"
#: Waits at least this long are logged.
LOG_WAIT_S = 0.1
#: Upper bound of the random delay added to every sleep, so waiters do not wake together.
DEFAULT_JITTER_S = 0.01
#: A lease outlives the ERP call's connect and read timeouts by this much.
LEASE_GRACE_S = 5.0


@dataclass(frozen=True)
class Permit:
    """A granted acquire: its bucket and how long it waited."""

    key: str
    waited_s: float


@dataclass(frozen=True)
class Usage:
    """The fleet's use of one bucket now."""

    in_flight: int
    in_window: int
    paused_s: float


class Limiter:
    """Limits the whole fleet's calls to one far side (``name``), in Redis.

    Strategies are taken leases first, request slots last: a request slot taken and then
    held while waiting for a lease would let the request reach the ERP later than counted.
    With no strategy at all the limiter still holds every acquirer back during a fleet
    pause (a 429 or a maintenance window), at the cost of one read of the pause per call.
    """

    def __init__(
        self, backend: Backend, strategies: Sequence[Strategy], *, prefix: str,
        name: str = "erp", jitter_s: float = DEFAULT_JITTER_S,
    ) -> None:
        self.backend = backend
        self.strategies = sorted(strategies, key=lambda s: s.kind == "rate")
        self.name = name
        self.jitter_s = jitter_s
        self.stats = LimiterStats(listener=metrics.limiter_listener(name))
        self._pause_key = keys.limiter_pause(prefix, name)

    @classmethod
    def from_settings(
        cls, redis_client: redis.Redis, settings: Settings, *, name: str = "erp",
        margin_s: float | None = None,
    ) -> Limiter:
        """The ERP limiter of ``O2C_ERP_RATE_LIMIT`` and ``O2C_ERP_MAX_CONCURRENCY``; with
        neither set, a limiter of fleet pauses only (the ERP's 429s and maintenance windows
        hold the whole fleet back whether or not a limit is configured)."""
        backend = RedisBackend(redis_client)
        prefix = settings.key_prefix
        strategies: list[Strategy] = []
        if settings.erp_max_concurrency > 0:
            lease_ttl_s = settings.erp_connect_timeout_s + settings.erp_timeout_s + LEASE_GRACE_S
            strategies.append(ConcurrencyLimit(
                backend, prefix=prefix, name=name, limit=settings.erp_max_concurrency,
                lease_ttl_s=lease_ttl_s,
            ))
        if settings.erp_rate_limit:
            item = limits.parse(settings.erp_rate_limit)
            strategies.append(MovingWindow(
                backend, prefix=prefix, name=name, limit=item.amount, window_s=item.get_expiry(),
                margin_s=settings.erp_rate_margin_s if margin_s is None else margin_s,
            ))
        return cls(backend, strategies, prefix=prefix, name=name)

    @contextmanager
    def acquire(self, *, timeout_s: float, key: str = DEFAULT_KEY) -> Iterator[Permit]:
        """Hold a slot for one call; wait at most ``timeout_s``, else raise ``Throttled``."""
        token = uuid.uuid4().hex
        held: list[Strategy] = []
        try:
            waited_s = self._take_all(key, token, timeout_s, held)
            yield Permit(key=key, waited_s=waited_s)
        finally:
            self._release(key, token, held)

    def pause(self, for_s: float, *, reason: str = "throttled") -> float:
        """Hold every acquirer of the fleet back ``for_s`` (a ``Retry-After``); never
        shortens a longer pause. Return the seconds of pause now in force."""
        in_force_ms = self.backend.pause(
            self._pause_key, pause_ms=max(1, math.ceil(for_s * 1000)), reason=reason
        )
        self.stats.add(pauses=1)
        log.warning("%s limiter: fleet paused for %.2f s (%s)", self.name, in_force_ms / 1000,
                    reason)
        return in_force_ms / 1000

    def usage(self, key: str = DEFAULT_KEY) -> Usage:
        """Leases in flight, requests in the current window, and the pause left."""
        counts = {s.kind: s.in_use(key) for s in self.strategies}
        return Usage(
            in_flight=counts.get("concurrency", 0), in_window=counts.get("rate", 0),
            paused_s=self.backend.pause_left(self._pause_key) / 1000,
        )

    def _take_all(self, key: str, token: str, timeout_s: float, held: list[Strategy]) -> float:
        start = time.monotonic()
        deadline = start + timeout_s
        waited_for: list[str] = []
        if not self.strategies:
            while self._wait_out_pause(start, deadline, waited_for):
                pass
        for strategy in self.strategies:
            while True:
                if self._wait_out_pause(start, deadline, waited_for):
                    continue
                attempt = strategy.try_acquire(key, token)
                if attempt.ok:
                    break
                self._sleep(attempt.wait_s, attempt.expected_s, strategy.kind, start, deadline,
                            waited_for)
            held.append(strategy)
            if strategy.kind == "concurrency":
                self.stats.add(leases=1)
        waited_s = time.monotonic() - start
        if waited_for:
            for strategy in held:
                strategy.renew(key, token)
            self.stats.add(waits=1, wait_seconds=waited_s)
            if waited_s >= LOG_WAIT_S:
                log.info("%s limiter: waited %.3f s for %s (%s)", self.name, waited_s,
                         "/".join(sorted(set(waited_for))), key)
        self.stats.add(acquires=1)
        return waited_s

    def _wait_out_pause(self, start: float, deadline: float, waited_for: list[str]) -> bool:
        """Sleep through a fleet pause in force (or give up); False when there is none."""
        paused_s = self.backend.pause_left(self._pause_key) / 1000
        if paused_s <= 0:
            return False
        self._sleep(paused_s, paused_s, "pause", start, deadline, waited_for)
        return True

    def _sleep(
        self, wait_s: float, expected_s: float, reason: str, start: float, deadline: float,
        waited_for: list[str],
    ) -> None:
        """Sleep ``wait_s`` plus jitter, or give up now if that overruns the deadline."""
        now = time.monotonic()
        if wait_s > deadline - now:
            self.stats.add(throttles=1, wait_seconds=now - start)
            # A pause was announced once, as a warning, by whoever set it: every task it
            # defers saying so again would be one warning per task per window.
            level = logging.INFO if reason == "pause" else logging.WARNING
            log.log(level, "%s limiter: no %s slot within %.2f s; expected in %.2f s",
                    self.name, reason, deadline - start, expected_s)
            raise Throttled(
                f"{self.name} limiter: no {reason} slot in time", reason=f"limiter:{reason}",
                retry_after_s=expected_s,
            )
        waited_for.append(reason)
        time.sleep(wait_s + random.uniform(0, self.jitter_s))

    def _release(self, key: str, token: str, held: list[Strategy]) -> None:
        for strategy in held:
            try:
                strategy.release(key, token)
            except redis.RedisError:
                log.warning("%s limiter: could not release a %s slot; it expires on its own",
                            self.name, strategy.kind, exc_info=True)
            if strategy.kind == "concurrency":
                self.stats.add(leases=-1)


class NullLimiter:
    """No Redis at hand (an adapter built without one): grants every acquire at once."""

    def __init__(self, *, name: str = "erp") -> None:
        self.name = name
        self.strategies: list[Strategy] = []
        self.stats = LimiterStats()

    @contextmanager
    def acquire(self, *, timeout_s: float, key: str = DEFAULT_KEY) -> Iterator[Permit]:
        yield Permit(key=key, waited_s=0.0)

    def pause(self, for_s: float, *, reason: str = "throttled") -> float:
        """Nothing to pause: without a shared store each caller backs off on its own."""
        return 0.0

    def usage(self, key: str = DEFAULT_KEY) -> Usage:
        return Usage(in_flight=0, in_window=0, paused_s=0.0)
