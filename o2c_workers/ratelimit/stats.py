"""What a limiter did, counted in-process for logs and a metrics exporter."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class LimiterStats:
    """Counters since the process started; read them, never write them from outside."""

    #: Slots granted.
    acquires: int = 0
    #: Acquires that had to wait at least once.
    waits: int = 0
    #: Seconds spent waiting, granted or not.
    wait_seconds: float = 0.0
    #: Acquires that gave up (``Throttled``).
    throttles: int = 0
    #: Pauses this process asked the fleet for.
    pauses: int = 0
    #: Concurrency leases this process holds now.
    leases: int = 0
    #: Called with every batch of deltas (the metrics exporter's counters).
    listener: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False,
                                                               compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)
        if self.listener is not None:
            self.listener(deltas)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self)
                    if f.name not in ("_lock", "listener")}
