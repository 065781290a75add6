"""The honest record: every ``/api`` call, and the counters ``/_sandbox/stats`` reports."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

#: Calls kept in the record; the oldest are dropped beyond this.
MAX_CALLS = 200_000


class Stats:
    """Calls, refused duplicates, business refusals and injected faults; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._calls: list[dict[str, Any]] = []
            self._seq = 0
            self._total = 0
            self._statuses: Counter[str] = Counter()
            self._faults: Counter[str] = Counter()
            self._duplicates: Counter[str] = Counter()
            self._refusals: Counter[str] = Counter()

    def record(self, *, method: str, path: str, query: str, status: int, started: float,
               started_wall: float, fault: str | None = None, exc_type: str | None = None,
               doctype: str | None = None) -> dict[str, Any]:
        """Add one call to the record; ``started`` is monotonic, ``started_wall`` epoch."""
        with self._lock:
            self._seq += 1
            self._total += 1
            self._statuses[str(status)] += 1
            call = {"seq": self._seq, "time": started_wall, "method": method, "path": path,
                    "query": query, "doctype": doctype, "status": status,
                    "duration_ms": round((time.monotonic() - started) * 1000, 3),
                    "fault": fault, "exc_type": exc_type}
            self._calls.append(call)
            if len(self._calls) > MAX_CALLS:
                del self._calls[: len(self._calls) - MAX_CALLS]
            return call

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def count_refusal(self, doctype: str | None, exc_type: str) -> None:
        with self._lock:
            if exc_type == "DuplicateEntryError":
                self._duplicates[doctype or "?"] += 1
            self._refusals[exc_type] += 1

    def calls(self, *, since: float | None = None, after_seq: int | None = None
              ) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self._calls
                    if (since is None or c["time"] >= since)
                    and (after_seq is None or c["seq"] > after_seq)]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": {"total": self._total, "by_status": dict(self._statuses)},
                "duplicates_refused": {"total": sum(self._duplicates.values()),
                                       "by_doctype": dict(self._duplicates)},
                "refusals_by_exc_type": dict(self._refusals),
                "faults_injected": dict(self._faults),
            }
