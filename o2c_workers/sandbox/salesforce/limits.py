"""The org's daily API request allocation and the count of every call."""

from __future__ import annotations

import threading
import time
from collections import Counter

from o2c_workers.sandbox.salesforce.store import SObjectError

#: One sandbox day, in sandbox seconds.
DAY_S = 86_400.0


class ApiLimits:
    """Counts REST calls in a rolling (scaled) day and refuses those past the allocation."""

    def __init__(self, *, allocation: int, time_scale: float = 1.0) -> None:
        self.allocation = allocation
        self._day_real_s = DAY_S / time_scale
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self.used = 0
        self.refused = 0
        #: (HTTP method, object type or resource) → calls, refused ones included.
        self.calls: Counter[tuple[str, str]] = Counter()

    def spend(self, method: str, resource: str) -> None:
        """Count one call; raise REQUEST_LIMIT_EXCEEDED once the allocation is spent."""
        with self._lock:
            if time.monotonic() - self._window_start >= self._day_real_s:
                self._window_start, self.used = time.monotonic(), 0
            self.calls[(method, resource)] += 1
            if self.used >= self.allocation:
                self.refused += 1
                raise SObjectError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            self.used += 1

    def header(self) -> str:
        """The ``Sforce-Limit-Info`` value."""
        with self._lock:
            return f"api-usage={self.used}/{self.allocation}"

    def reset(self, *, allocation: int | None = None) -> None:
        with self._lock:
            self.used, self.refused = 0, 0
            self._window_start = time.monotonic()
            if allocation is not None:
                self.allocation = allocation

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "used": self.used, "allocation": self.allocation, "refused": self.refused,
                "calls": [{"method": m, "resource": r, "count": n}
                          for (m, r), n in sorted(self.calls.items())],
            }
