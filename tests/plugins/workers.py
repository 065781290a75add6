"""Real Celery worker processes for tests, started with the real app on the test Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if " ready." in line or "ready.\"" in line:
                self.ready.set()

    def output(self) -> str:
        return "".join(self.lines)

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True,
                             text=True, check=False).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the whole worker: the main process and its pool children."""
        for pid in [*self.child_pids(), self.process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)


def worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "O2C_REDIS_URL": redis_url,
        "O2C_LOG_JSON": "true",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def start_worker(redis_url: str, *, queues: str = "customer,pricing,order,invoice,payment",
                 concurrency: int = 2, include: str | None = None, pool: str = "prefork",
                 env: dict[str, str] | None = None, wait: bool = True) -> WorkerProcess:
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    cmd = [sys.executable, "-m", "celery", "-A", "o2c_workers", "worker", "-Q", queues,
           "-c", str(concurrency), "-P", pool, "-n", name, "--without-mingle",
           "--without-gossip", "-l", "INFO"]
    if include:
        cmd += ["-I", include]
    process = subprocess.Popen(cmd, cwd=ROOT, env=worker_env(redis_url, **(env or {})),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    worker = WorkerProcess(name=name, process=process)
    threading.Thread(target=worker._pump, daemon=True).start()
    if wait and not worker.ready.wait(READY_TIMEOUT_S):
        worker.kill()
        raise RuntimeError("worker did not become ready:\n" + worker.output()[-4000:])
    return worker


@pytest.fixture
def workers(redis_url: str) -> Iterator[list[WorkerProcess]]:
    """Start workers with ``workers.append(start_worker(redis_url, ...))``; all stop after."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def wait_for(predicate, *, timeout_s: float = 30.0, interval_s: float = 0.1, what: str = ""):
    """Poll until ``predicate()`` is truthy; return its value or fail with ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")
