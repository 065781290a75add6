"""The fleet-wide limiter of calls to the ERP: request rate, concurrency and pauses.

``Limiter.from_settings(redis_client, settings)`` builds it; ``with limiter.acquire(
timeout_s=...)`` holds a slot for one call; ``limiter.pause(retry_after_s)`` holds the whole
fleet back after a 429 or during the ERP's maintenance, limits configured or not. Keys are
listed in ``o2c_workers.keys``.
"""

from __future__ import annotations

from o2c_workers.ratelimit.backend import Backend, RedisBackend
from o2c_workers.ratelimit.base import Attempt, Strategy
from o2c_workers.ratelimit.concurrency import ConcurrencyLimit
from o2c_workers.ratelimit.limiter import DEFAULT_KEY, Limiter, NullLimiter, Permit, Usage
from o2c_workers.ratelimit.stats import LimiterStats
from o2c_workers.ratelimit.window import DEFAULT_MARGIN_S, MovingWindow

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_MARGIN_S",
    "Attempt",
    "Backend",
    "ConcurrencyLimit",
    "Limiter",
    "LimiterStats",
    "MovingWindow",
    "NullLimiter",
    "Permit",
    "RedisBackend",
    "Strategy",
    "Usage",
]
