"""Shared fixtures: a real Redis database of the tests' own, cleaned before and after."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from o2c_workers.dev.redis_runtime import RedisHandle, ensure_redis, with_db
from tests.rabbitmq import VirtualHost, vhost_or_skip

pytest_plugins = ["tests.plugins.sandbox", "tests.plugins.workers"]


def _test_db() -> int:
    """The database number this test process owns: ``O2C_TEST_REDIS_DB`` (default 12) set
    suites side by side; each pytest-xdist worker takes the next (``gw1`` the base + 1)."""
    base = int(os.environ.get("O2C_TEST_REDIS_DB", "12"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return base + int(worker.removeprefix("gw"))


TEST_DB = _test_db()

# A pytest-xdist worker runs with COLUMNS=80 in its environment, and the CLI's consoles take
# their width from it when they are built (at import): the tests that read a table set their
# own width per invocation, which only counts when nothing was frozen before them.
os.environ.pop("COLUMNS", None)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisHandle]:
    # Never O2C_REDIS_URL: the tests flush their database, and that may be someone's data.
    handle = ensure_redis(env="O2C_TEST_REDIS_URL")
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisHandle) -> Iterator[str]:
    url = with_db(redis_server.url, TEST_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url=redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that starts a subprocess must be marked ``slow`` (``-m "not slow"`` then runs
    only the quick ones): starting one in an unmarked test fails it."""
    if item.get_closest_marker("slow") is not None:
        return (yield)
    real = subprocess.Popen.__init__

    def refuse(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"{item.nodeid} starts a subprocess; mark it slow")

    subprocess.Popen.__init__ = refuse  # type: ignore[method-assign]
    try:
        return (yield)
    finally:
        subprocess.Popen.__init__ = real  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def rabbitmq_vhost() -> Iterator[VirtualHost]:
    """A RabbitMQ vhost of this test process's own (``tests.rabbitmq``); skips, saying why,
    only when no RabbitMQ can be found."""
    yield from vhost_or_skip()


@pytest.fixture(scope="session")
def amqp_url(rabbitmq_vhost: VirtualHost) -> str:
    """``O2C_BROKER_URL`` for a RabbitMQ broker: this process's own vhost."""
    return rabbitmq_vhost.url


@pytest.fixture
def fresh_amqp_url() -> Iterator[str]:
    """``O2C_BROKER_URL`` of a vhost of this test's own, deleted after it; skips, saying why,
    only when no RabbitMQ can be found."""
    for vhost in vhost_or_skip():
        yield vhost.url
