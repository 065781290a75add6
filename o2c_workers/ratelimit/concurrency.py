"""The concurrency limit: leases that expire on their own when their worker dies."""

from __future__ import annotations

from o2c_workers import keys
from o2c_workers.ratelimit.backend import Backend
from o2c_workers.ratelimit.base import TAKEN, Attempt, Kind

#: How often a waiter asks again for a lease; no event tells it one came free.
DEFAULT_POLL_S = 0.05


class ConcurrencyLimit:
    """At most ``limit`` leases live at once across the fleet.

    A lease lives ``lease_ttl_s``: make it longer than the ERP call's timeout, so that only
    a dead worker's lease ever expires. Release drops it at once.
    """

    kind: Kind = "concurrency"

    def __init__(
        self, backend: Backend, *, prefix: str, name: str, limit: int, lease_ttl_s: float,
        poll_s: float = DEFAULT_POLL_S,
    ) -> None:
        if limit < 1 or lease_ttl_s <= 0 or poll_s <= 0:
            raise ValueError("limit must be >= 1, lease_ttl_s and poll_s > 0")
        self.backend = backend
        self.prefix, self.name = prefix, name
        self.limit = limit
        self.lease_ttl_s, self.poll_s = lease_ttl_s, poll_s

    def _key(self, key: str) -> str:
        return keys.limiter_slots(self.prefix, self.name, key)

    def try_acquire(self, key: str, token: str) -> Attempt:
        expires_ms = self.backend.lease(
            self._key(key), limit=self.limit, ttl_ms=self.lease_ttl_s * 1000, lease_id=token
        )
        if expires_ms == 0:
            return TAKEN
        expires_s = expires_ms / 1000
        return Attempt(ok=False, wait_s=min(self.poll_s, expires_s), expected_s=expires_s)

    def renew(self, key: str, token: str) -> None:
        self.try_acquire(key, token)

    def release(self, key: str, token: str) -> None:
        self.backend.release(self._key(key), lease_id=token)

    def in_use(self, key: str) -> int:
        return self.backend.lease_count(self._key(key))
