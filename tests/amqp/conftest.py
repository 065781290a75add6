"""RabbitMQ as the broker: this test process's vhost, read as the workers would read it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from kombu.connection import Connection

from config import Settings, get_settings, load_settings
from o2c_workers import app as celery_app
from o2c_workers.amqp import topology
from o2c_workers.amqp.publish import Publisher
from o2c_workers.celery_app import celery_config
from o2c_workers.domains import DOMAINS
from o2c_workers.runtime import set_runtime
from tests.soapmsg import ORG_ID

TOKEN = "amqp-webhook-token"
ERP_SECRET = "amqp-erp-secret"


@dataclass
class Broker:
    """The queues of one vhost, read without a worker."""

    url: str

    def _channel(self, conn: Any) -> Any:
        channel = conn.channel()
        for queue in topology.task_queues():
            queue(channel).declare()
        return channel

    def count(self, queue: str) -> int:
        with Connection(self.url) as conn:
            channel = self._channel(conn)
            return int(channel.queue_declare(queue, passive=True).message_count)

    def counts(self) -> dict[str, int]:
        return {q: self.count(q) for q in topology.QUEUE_NAMES}

    def take(self, queue: str) -> list[dict[str, Any]]:
        """Every message waiting on ``queue``, oldest first, decoded (and removed)."""
        out = []
        with Connection(self.url) as conn:
            channel = self._channel(conn)
            while (message := channel.basic_get(queue, no_ack=True)) is not None:
                args, kwargs, embed = json.loads(message.body)
                out.append({"headers": dict(message.headers or {}), "args": args,
                            "kwargs": kwargs, "embed": embed,
                            "properties": dict(message.properties),
                            "routing_key": message.delivery_info["routing_key"],
                            "exchange": message.delivery_info["exchange"]})
        return out

    def purge(self) -> None:
        with Connection(self.url) as conn:
            channel = self._channel(conn)
            for queue in topology.QUEUE_NAMES:
                channel.queue_purge(queue)


@pytest.fixture
def broker(amqp_url: str) -> Broker:
    """The process's vhost, every queue empty."""
    made = Broker(amqp_url)
    made.purge()
    return made


@pytest.fixture
def amqp_settings(redis_url: str, amqp_url: str) -> Settings:
    return load_settings(redis_url=redis_url, broker_url=amqp_url, webhook_token=TOKEN,
                         salesforce_org_ids=[ORG_ID], erp_webhook_secret=ERP_SECRET)


@pytest.fixture
def publisher(amqp_url: str) -> Iterator[Publisher]:
    made = Publisher(amqp_url)
    yield made
    made.close()


def queue_lists(client: redis.Redis) -> int:
    """How many of the Redis lists a Redis broker's queues would be exist (on RabbitMQ:
    none, ever)."""
    return int(client.exists(*DOMAINS))


def amqp_port(url: str) -> int:
    return urlsplit(url).port or 5672


def via(url: str, port: int) -> str:
    """``url`` reached through a local proxy's ``port``."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    creds = netloc[0] + "@" if len(netloc) == 2 else ""
    return parts._replace(netloc=f"{creds}127.0.0.1:{port}").geturl()


@contextmanager
def running_worker(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Iterator[Settings]:
    """A real Celery worker (``celery.contrib.testing.worker``, the solo pool in a thread)
    on the fleet's app configured by ``celery_config`` for the settings of ``env`` (a
    RabbitMQ ``O2C_BROKER_URL``), consuming every domain queue; the app's configuration
    comes back after."""
    import tests.probe_tasks  # noqa: F401  (registers the probe tasks)

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.broker_kind == "amqp"
    before = {key: celery_app.conf[key] for key in celery_config(settings)}
    _reconfigure(celery_config(settings))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False,
                          shutdown_timeout=30, queues=list(DOMAINS)):
            root.handlers[:] = handlers
            root.setLevel(level)
            yield settings
    finally:
        _reconfigure(before)
        set_runtime(None)
        get_settings.cache_clear()


@pytest.fixture
def amqp_worker(redis_url: str, amqp_url: str, broker: Broker,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A worker on this process's vhost and the test Redis (``running_worker``)."""
    with running_worker(monkeypatch, {"O2C_REDIS_URL": redis_url,
                                      "O2C_BROKER_URL": amqp_url}) as settings:
        yield settings


def _reconfigure(conf: dict[str, Any]) -> None:
    """Configure the fleet's app anew, dropping what it built from the old configuration:
    its connection pool, and its AMQP object (the queues it declares, its routes, its
    producers), which Celery keeps from the first use."""
    celery_app.conf.update(conf)
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)
