"""The request-rate limit: an exact moving window, a safety margin longer than the ERP's."""

from __future__ import annotations

from o2c_workers import keys
from o2c_workers.ratelimit.backend import Backend
from o2c_workers.ratelimit.base import TAKEN, Attempt, Kind

#: Added to the ERP's window. The ERP counts arrivals, we count acquires: a request whose
#: trip is slower than the next one's by up to this much still lands in its own ERP window.
DEFAULT_MARGIN_S = 0.05


class MovingWindow:
    """At most ``limit`` acquires in any ``window_s + margin_s``, measured on Redis' clock.

    The margin costs ``margin_s / window_s`` of the throughput (5 % for 50 ms on 1 s) and
    buys a guarantee as the ERP sees it: any ERP window of ``window_s`` holds only requests
    acquired within ``window_s + jitter``, so no more than ``limit`` while the spread of
    send and network delays stays under the margin.
    """

    kind: Kind = "rate"

    def __init__(
        self, backend: Backend, *, prefix: str, name: str, limit: int, window_s: float,
        margin_s: float = DEFAULT_MARGIN_S,
    ) -> None:
        if limit < 1 or window_s <= 0 or margin_s < 0:
            raise ValueError("limit must be >= 1, window_s > 0 and margin_s >= 0")
        self.backend = backend
        self.prefix, self.name = prefix, name
        self.limit = limit
        self.window_s, self.margin_s = window_s, margin_s
        self._window_ms = (window_s + margin_s) * 1000

    def _key(self, key: str) -> str:
        return keys.limiter_rate(self.prefix, self.name, key)

    def try_acquire(self, key: str, token: str) -> Attempt:
        wait_ms = self.backend.window_hit(
            self._key(key), limit=self.limit, window_ms=self._window_ms, member=token
        )
        if wait_ms == 0:
            return TAKEN
        return Attempt(ok=False, wait_s=wait_ms / 1000, expected_s=wait_ms / 1000)

    def renew(self, key: str, token: str) -> None:
        """A request slot is spent once taken."""

    def release(self, key: str, token: str) -> None:
        """A request slot is spent once taken."""

    def in_use(self, key: str) -> int:
        return self.backend.window_count(self._key(key), window_ms=self._window_ms)
