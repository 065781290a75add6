"""The request-rate limit kept by the ``limits`` library's moving window.

Exact, like ``MovingWindow``, but its window is whole seconds and its timestamps come from
each worker's own clock: fit for long windows (``1000/hour``), where a margin rounded up to
a second costs little, on hosts kept in step by NTP. For ``20/second`` use ``MovingWindow``.
"""

from __future__ import annotations

import math
import time

import redis
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from o2c_workers import keys
from o2c_workers.ratelimit.base import TAKEN, Attempt, Kind

#: ``limits`` ids its keys ``{namespace}/{identifiers}/{amount}/{multiples}/{granularity}``.
NAMESPACE = "limits"


class LimitsMovingWindow:
    """At most ``item.amount`` acquires in any window of ``item`` plus the margin, in seconds
    rounded up (``20/second`` with a 50 ms margin becomes 20 per 2 seconds: halved)."""

    kind: Kind = "rate"

    def __init__(
        self, client: redis.Redis, *, prefix: str, name: str, item: RateLimitItem,
        margin_s: float = 0.0,
    ) -> None:
        window_s = math.ceil(item.get_expiry() + margin_s)
        self.item = RateLimitItemPerSecond(item.amount, window_s, namespace=NAMESPACE)
        self.name = name
        self.storage = RedisStorage(
            "redis://", connection_pool=client.connection_pool,
            key_prefix=keys.limits_storage_prefix(prefix),
        )
        self.limiter = MovingWindowRateLimiter(self.storage)

    def try_acquire(self, key: str, token: str) -> Attempt:
        if self.limiter.hit(self.item, self.name, key):
            return TAKEN
        stats = self.limiter.get_window_stats(self.item, self.name, key)
        wait_s = max(0.001, stats.reset_time - time.time())
        return Attempt(ok=False, wait_s=wait_s, expected_s=wait_s)

    def renew(self, key: str, token: str) -> None:
        """A request slot is spent once taken."""

    def release(self, key: str, token: str) -> None:
        """A request slot is spent once taken."""

    def in_use(self, key: str) -> int:
        stats = self.limiter.get_window_stats(self.item, self.name, key)
        return self.item.amount - stats.remaining
