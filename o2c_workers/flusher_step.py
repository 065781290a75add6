"""The write-back flusher of a worker process: a Celery worker bootstep, so every worker
(any pool, the test harness's too) runs one flusher thread in its main process beside
the pool, with connections of its own (never shared across the pool's fork)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import bootsteps

from config import get_settings
from o2c_workers.runtime import Runtime, build_runtime
from o2c_workers.writeback.flusher import Flusher, Retries

log = logging.getLogger("o2c.writeback")

#: How long a stopping worker waits for a flush in progress (seconds).
STOP_WAIT_S = 15.0


def build_flusher(runtime: Runtime) -> Flusher:
    """A flusher on ``runtime``'s Redis, dead-letter store and Salesforce client."""
    s = runtime.settings
    return Flusher(runtime.outbox, salesforce=lambda: runtime.salesforce,
                   dead_letters=runtime.dead_letters, client=runtime.redis,
                   retries=Retries(max_attempts=s.retry_max_attempts, base_s=s.retry_base_s,
                                   cap_s=s.retry_cap_s))


class FlusherStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Starts the flusher after the pool (its children forked without the thread)."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, worker: Any) -> None:
        flusher = build_flusher(build_runtime(get_settings()))
        self._stop.clear()
        self._thread = threading.Thread(target=flusher.run, args=(self._stop,),
                                        name="o2c-writeback-flusher", daemon=True)
        self._thread.start()
        log.info("write-back flusher started", extra={"owner": flusher.owner})

    def stop(self, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT_S)
            self._thread = None

    def terminate(self, worker: Any) -> None:
        """A cold shutdown stops the flusher too (``StartStopStep`` would look for an
        ``obj`` this step does not have)."""
        self.stop(worker)
