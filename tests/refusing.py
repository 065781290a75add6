"""Private Redis servers driven into refusing writes, as production ones get there (tests only).

Never the shared Redis: each server here is started for the test and thrown away.

- ``out_of_memory``: ``maxmemory`` below what is used, under ``noeviction``;
- ``read_only``: the server made a replica of another private server (a failover's view);
- ``misconf``: a save point set, its folder gone, a failed ``BGSAVE`` with
  ``stop-writes-on-bgsave-error yes``.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from o2c_workers.dev.redis_runtime import RedisHandle, start_private


@pytest.fixture
def private_redis() -> Iterator[RedisHandle]:
    """A private Redis whose data folder ``misconf`` may delete."""
    handle = start_private(workdir=Path(tempfile.mkdtemp(prefix="o2c-refusing-")))
    yield handle
    handle.stop()


@contextlib.contextmanager
def out_of_memory(client: redis.Redis) -> Iterator[None]:
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    try:
        yield
    finally:
        client.config_set("maxmemory", 0)


@contextlib.contextmanager
def read_only(client: redis.Redis) -> Iterator[None]:
    """``client``'s server becomes a replica of a fresh, empty primary (its data is replaced
    by the primary's, as after a failover)."""
    primary = start_private()
    try:
        port = int(primary.url.rsplit(":", 1)[1].split("/")[0])
        client.replicaof("127.0.0.1", port)
        yield
    finally:
        client.replicaof("NO", "ONE")
        primary.stop()


@contextlib.contextmanager
def misconf(client: redis.Redis, handle: RedisHandle) -> Iterator[None]:
    assert handle.workdir is not None
    client.config_set("save", "3600 1")
    client.config_set("stop-writes-on-bgsave-error", "yes")
    shutil.rmtree(handle.workdir)
    client.bgsave()
    deadline = time.monotonic() + 5
    while client.info("persistence")["rdb_last_bgsave_status"] != "err":
        assert time.monotonic() < deadline, "the BGSAVE did not fail"
        time.sleep(0.02)
    try:
        yield
    finally:
        client.config_set("stop-writes-on-bgsave-error", "no")
        client.config_set("save", "")
