"""The fleet's workers on RabbitMQ (the consuming side): a vhost of each test's own on the
machine's node, the state on the test Redis, real worker processes
(``tests.plugins.workers``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from celery import Celery

from config import get_settings
from o2c_workers.celery_app import create_app
from o2c_workers.dev.fleet import ManagedProcess
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.runtime import set_runtime
from tests.plugins.workers import start_worker
from tests.rabbitmq import VirtualHost, ctl, vhost_or_skip

PROBES = "tests.probe_tasks,tests.dlq.tasks"


@dataclass(frozen=True)
class Counts:
    ready: int
    unacked: int


@dataclass
class Rabbit:
    """One vhost, and an app of the fleet publishing to it from the test's process."""

    vhost: VirtualHost
    redis_url: str
    app: Celery
    #: Every worker started; each stopped after the test.
    started: list[ManagedProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.vhost.url

    def counts(self) -> dict[str, Counts]:
        """Ready and unacked messages of every queue (``rabbitmqctl list_queues``)."""
        out = ctl("list_queues", "-p", self.vhost.name, "--no-table-headers", "name",
                  "messages_ready", "messages_unacknowledged")
        found = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3:
                found[parts[0]] = Counts(int(parts[1]), int(parts[2]))
        return found

    def queue(self, name: str) -> Counts:
        return self.counts().get(name, Counts(0, 0))

    def delayed(self) -> int:
        return sum(c.ready for name, c in self.counts().items()
                   if name.startswith("celery_delayed_"))

    def send(self, task: str, payload: dict[str, Any], *, trace_key: str,
             **options: Any) -> str:
        """Publish one task message as Celery publishes (confirmed); its task id."""
        task_id = str(uuid.uuid4())
        self.app.send_task(task, args=[{"trace_key": trace_key, **payload}], task_id=task_id,
                           headers={"trace_key": trace_key}, **options)
        return task_id

    def worker(self, *, queues: str = "order", concurrency: int = 1,
               env: dict[str, str] | None = None, state_url: str | None = None,
               wait: bool = True) -> ManagedProcess:
        worker = start_worker(state_url or self.redis_url, queues=queues,
                              concurrency=concurrency, include=PROBES, wait=wait,
                              broker_url=self.url, env=env)
        self.started.append(worker)
        return worker


@pytest.fixture
def fresh_vhost() -> Iterator[VirtualHost]:
    """A vhost of this test's own, deleted after it; skips, saying why, only when no
    RabbitMQ can be found."""
    yield from vhost_or_skip()


@pytest.fixture
def rabbit(fresh_vhost: VirtualHost, redis_url: str, redis_client: redis.Redis,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Rabbit]:
    monkeypatch.setenv("O2C_REDIS_URL", redis_url)
    monkeypatch.setenv("O2C_BROKER_URL", fresh_vhost.url)
    get_settings.cache_clear()
    app = create_app()
    rabbit = Rabbit(fresh_vhost, redis_url, app)
    yield rabbit
    for worker in rabbit.started:
        worker.stop()
    app.close()
    set_runtime(None)
    get_settings.cache_clear()


@pytest.fixture
def store(redis_client: redis.Redis) -> DeadLetterStore:
    return DeadLetterStore(redis_client, prefix="o2c", retention_s=14 * 86400)


def probe_runs(client: redis.Redis, trace_key: str) -> list[dict[str, Any]]:
    from tests.probe_tasks import PROBE_KEY

    return [call for call in (json.loads(raw) for raw in client.lrange(PROBE_KEY, 0, -1))
            if call["trace_key"] == trace_key]
