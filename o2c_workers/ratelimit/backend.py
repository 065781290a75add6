"""The backend contract of the limiter, and its Redis implementation.

Every operation is atomic and reads the clock of the backend, never the caller's, so the
hosts of a fleet need not agree on the time. Durations cross the contract in milliseconds.
"""

from __future__ import annotations

from typing import Protocol

import redis

#: Redis time in milliseconds (with microseconds), and scores written with three decimals:
#: Lua's default number-to-string conversion keeps only 14 significant digits.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local function ms(x) return string.format('%.3f', x) end
"""

#: KEYS[1] window zset; ARGV limit, window_ms, member. 0 when taken, else ms until a slot.
_WINDOW_HIT = _PRELUDE + """
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(now - window))
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], ms(now), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window))
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.ceil(tonumber(oldest[2]) + window - now))
"""

#: KEYS[1] window zset; ARGV window_ms. Entries inside the window now.
_WINDOW_COUNT = _PRELUDE + """
return redis.call('ZCOUNT', KEYS[1], '(' .. ms(now - tonumber(ARGV[1])), '+inf')
"""

#: KEYS[1] lease zset; ARGV limit, ttl_ms, lease id. 0 when leased, else ms until the
#: earliest lease expires. Expired leases (their worker died) are purged first.
_LEASE = _PRELUDE + """
local limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(now))
if redis.call('ZCARD', KEYS[1]) < limit or redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], ms(now + ttl), ARGV[3])
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(last[2]) - now))
  return 0
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.ceil(tonumber(first[2]) - now))
"""

#: KEYS[1] lease zset. Leases not yet expired.
_LEASE_COUNT = _PRELUDE + """
return redis.call('ZCOUNT', KEYS[1], '(' .. ms(now), '+inf')
"""

#: KEYS[1] pause key; ARGV ms, reason. Sets the pause unless a longer one runs; returns
#: the pause in force, in ms.
_PAUSE = """
local want = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left < want then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', want)
  return want
end
return left
"""


class Backend(Protocol):
    """The atomic operations the strategies and the limiter build on."""

    def window_hit(self, key: str, *, limit: int, window_ms: float, member: str) -> int:
        """Record ``member`` if fewer than ``limit`` entries lie in the last ``window_ms``.

        Return 0 when recorded, else the ms until the oldest entry leaves the window. The
        key expires one window after its last entry.
        """

    def window_count(self, key: str, *, window_ms: float) -> int:
        """Entries recorded in the last ``window_ms``."""

    def lease(self, key: str, *, limit: int, ttl_ms: float, lease_id: str) -> int:
        """Take (or renew) lease ``lease_id`` for ``ttl_ms`` if fewer than ``limit`` are live.

        Return 0 when held, else the ms until the earliest live lease expires. Expired leases
        are dropped first; the key expires with its longest lease.
        """

    def release(self, key: str, *, lease_id: str) -> None:
        """Drop lease ``lease_id``; dropping a missing lease is a no-op."""

    def lease_count(self, key: str) -> int:
        """Live leases."""

    def pause(self, key: str, *, pause_ms: int, reason: str) -> int:
        """Pause for ``pause_ms`` unless a longer pause runs; return the ms in force."""

    def pause_left(self, key: str) -> int:
        """Ms left of the current pause, 0 when none."""


class RedisBackend:
    """The contract on one Redis (or a Sentinel-managed primary): one script per operation."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._window_hit = client.register_script(_WINDOW_HIT)
        self._window_count = client.register_script(_WINDOW_COUNT)
        self._lease = client.register_script(_LEASE)
        self._lease_count = client.register_script(_LEASE_COUNT)
        self._pause = client.register_script(_PAUSE)

    def window_hit(self, key: str, *, limit: int, window_ms: float, member: str) -> int:
        return int(self._window_hit(keys=[key], args=[limit, window_ms, member]))

    def window_count(self, key: str, *, window_ms: float) -> int:
        return int(self._window_count(keys=[key], args=[window_ms]))

    def lease(self, key: str, *, limit: int, ttl_ms: float, lease_id: str) -> int:
        return int(self._lease(keys=[key], args=[limit, ttl_ms, lease_id]))

    def release(self, key: str, *, lease_id: str) -> None:
        self.client.zrem(key, lease_id)

    def lease_count(self, key: str) -> int:
        return int(self._lease_count(keys=[key]))

    def pause(self, key: str, *, pause_ms: int, reason: str) -> int:
        return int(self._pause(keys=[key], args=[pause_ms, reason]))

    def pause_left(self, key: str) -> int:
        left: int = self.client.pttl(key)  # type: ignore[assignment]
        return max(0, left)
