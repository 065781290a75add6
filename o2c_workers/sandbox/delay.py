"""Run jobs at their due time on one background thread (the simulators' clockwork)."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("o2c.sandbox.delay")

Job = Callable[[], None]


class DelayQueue:
    """``later(delay_s, job)`` runs ``job`` on the queue's thread once ``delay_s`` passed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition()
        self._jobs: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._running = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    def later(self, delay_s: float, job: Job) -> None:
        with self._cond:
            heapq.heappush(self._jobs, (time.monotonic() + delay_s, next(self._seq), job))
            self._cond.notify()

    def pending(self) -> int:
        """Jobs waiting or running."""
        with self._cond:
            return len(self._jobs) + self._running

    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def stop(self, *, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=timeout_s)

    def _next(self) -> Job | None:
        with self._cond:
            while not self._stopping and (not self._jobs or self._jobs[0][0] > time.monotonic()):
                self._cond.wait(self._jobs[0][0] - time.monotonic() if self._jobs else None)
            if self._stopping:
                return None
            self._running += 1
            return heapq.heappop(self._jobs)[2]

    def _run(self) -> None:
        while (job := self._next()) is not None:
            try:
                job()
            except Exception:
                log.exception("%s: a job failed", self.name)
            finally:
                with self._cond:
                    self._running -= 1
