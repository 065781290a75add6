"""Real Celery worker processes for tests, started with the real app on the test Redis by
the same process manager as the demo and ``make chaos`` (``o2c_workers.dev.fleet``)."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from o2c_workers.dev.fleet import Fleet, ManagedProcess

ROOT = Path(__file__).resolve().parents[2]
#: Each worker logs to a file of its own here, read by ``log_text()`` and ``wait_ready()``.
LOG_DIR = Path(tempfile.mkdtemp(prefix="o2c-test-workers-"))


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
                 env: dict[str, str] | None = None, wait: bool = True,
                 broker_url: str | None = None) -> ManagedProcess:
    """One worker process (on ``broker_url``'s RabbitMQ when given, else on the state
    Redis); ``wait`` for its "ready." line before returning."""
    broker = {"O2C_BROKER_URL": broker_url} if broker_url else {}
    fleet = Fleet(worker_env(redis_url, **broker, **(env or {})), log_dir=LOG_DIR)
    extra = ["-P", pool, *(["-I", include] if include else [])]
    worker = fleet.start_worker(queues, concurrency=concurrency,
                                name=f"test-{uuid.uuid4().hex[:8]}", extra=extra)
    if wait:
        try:
            worker.wait_ready()
        except RuntimeError:
            worker.kill()
            raise
    return worker


@pytest.fixture
def workers(redis_url: str) -> Iterator[list[ManagedProcess]]:
    """Start workers with ``workers.append(start_worker(redis_url, ...))``; all stop after."""
    started: list[ManagedProcess] = []
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
