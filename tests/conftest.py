"""Shared fixtures: a real Redis database of the tests' own, cleaned before and after."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from o2c_workers.redis_runtime import RedisHandle, ensure_redis, with_db

pytest_plugins = ["tests.plugins.sandbox", "tests.plugins.workers"]

#: The database number the tests own; set O2C_TEST_REDIS_DB to run suites side by side.
TEST_DB = int(os.environ.get("O2C_TEST_REDIS_DB", "12"))


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
