"""The gate every ``/api`` call passes: maintenance, rate and concurrency limits, and the
faults injected into admitted calls (latency, 5xx, answers lost after the commit).

The rate limit is exact: an admitted call is refused with 429 when the calls admitted in the
last second (a sliding window, ``t > now - 1``) already number ``rate_limit_per_s``. The same
timestamps give the admitted peak, so the peak can never exceed the limit.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from typing import Any

from o2c_workers.sandbox.erp.config import Faults
from o2c_workers.sandbox.erp.errors import FrappeError

#: The sliding window of the rate limit and of the peaks, in seconds.
WINDOW_S = 1.0


class Gate:
    """Admission, live fault settings and the peaks of traffic; thread-safe."""

    def __init__(self, faults: Faults, *, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._faults = Faults()
        self._maintenance_until: float | None = None
        self._received: deque[float] = deque()
        self._admitted: deque[float] = deque()
        self._in_flight = 0
        self.reset_peaks()
        self.update(faults.model_dump(exclude_unset=True))

    def reset_peaks(self) -> None:
        with self._lock:
            self.peak_received_per_s = 0
            self.peak_admitted_per_s = 0
            self.peak_concurrency = 0

    @property
    def faults(self) -> Faults:
        return self._faults

    def current(self) -> dict[str, Any]:
        """The settings as ``GET /_sandbox/faults`` shows them (remaining maintenance)."""
        with self._lock:
            data = self._faults.model_dump()
            remaining = self._maintenance_remaining(time.monotonic())
            data["maintenance_for_s"] = round(remaining, 3) if remaining else None
            return data

    def update(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Apply a partial update; raises pydantic's ValidationError on bad values."""
        with self._lock:
            merged = {**self._faults.model_dump(exclude={"maintenance_for_s"}), **patch}
            faults = Faults.model_validate(merged)
            if "maintenance_for_s" in patch:
                window = faults.maintenance_for_s
                self._maintenance_until = time.monotonic() + window if window else None
            self._faults = faults
        return self.current()

    def admit(self) -> tuple[FrappeError | None, str | None]:
        """Admit a call (the caller must ``release`` it) or refuse it with its fault kind."""
        with self._lock:
            now = time.monotonic()
            self._received.append(now)
            _trim(self._received, now)
            self.peak_received_per_s = max(self.peak_received_per_s, len(self._received))
            _trim(self._admitted, now)
            refusal, kind = self._refusal(now)
            if refusal is not None:
                return refusal, kind
            self._admitted.append(now)
            self.peak_admitted_per_s = max(self.peak_admitted_per_s, len(self._admitted))
            self._in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self._in_flight)
            return None, None

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def latency_s(self) -> float:
        with self._lock:
            faults = self._faults
            jitter = self._rng.uniform(0, faults.latency_jitter_ms) \
                if faults.latency_jitter_ms else 0.0
            return (faults.latency_ms + jitter) / 1000

    def inject_error(self) -> FrappeError | None:
        with self._lock:
            if not self._roll(self._faults.error_rate):
                return None
            status = self._faults.error_status
        return FrappeError(status, "InternalServerError", "Internal Server Error",
                           title="Server Error")

    def lose_answer(self) -> float | None:
        """Seconds to hang before dropping the connection, if this answer is to be lost."""
        with self._lock:
            if self._roll(self._faults.timeout_after_commit_rate):
                return self._faults.timeout_hang_s
            return None

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def _maintenance_remaining(self, now: float) -> float:
        if self._maintenance_until is None or now >= self._maintenance_until:
            return 0.0
        return self._maintenance_until - now

    def _refusal(self, now: float) -> tuple[FrappeError | None, str | None]:
        remaining = self._maintenance_remaining(now)
        if remaining:
            wait = str(max(1, math.ceil(remaining)))
            return FrappeError(503, "SessionStopped", "The system is being updated. Please "
                               "refresh again after a few moments.", title="Updating",
                               headers={"Retry-After": wait}), "maintenance"
        limit = self._faults.rate_limit_per_s
        if limit is not None and len(self._admitted) >= limit:
            wait = str(max(1, math.ceil(self._admitted[0] + WINDOW_S - now)))
            return FrappeError(429, "TooManyRequestsError", f"Rate limit exceeded: at most "
                               f"{limit:g} requests per second", title="Too Many Requests",
                               headers={"Retry-After": wait}), "rate_limited"
        cap = self._faults.concurrency_limit
        if cap is not None and self._in_flight >= cap:
            return FrappeError(429, "TooManyRequestsError", f"Too many concurrent requests: "
                               f"at most {cap} at a time", title="Too Many Requests",
                               headers={"Retry-After": "1"}), "concurrency_limited"
        return None, None


def _trim(window: deque[float], now: float) -> None:
    while window and window[0] <= now - WINDOW_S:
        window.popleft()
