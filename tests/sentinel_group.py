"""A real Redis Sentinel over two real Redis servers, a primary and its replica, started
for a test: the test SIGKILLs the primary and the sentinel promotes the replica, as in
production (tests only).

Import the fixture where it is used: ``from tests.sentinel_group import sentinel_group``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from o2c_workers.dev.redis_runtime import (
    RedisHandle,
    free_port,
    redis_server_binary,
    start_private,
)
from tests.replica import Replica

MASTER = "o2c"
#: The sentinel's own settings, not the fleet's: it calls a silent primary down after 1 s.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10000


@dataclass
class SentinelGroup:
    primary: RedisHandle
    replica: Replica
    sentinel: subprocess.Popen[bytes]
    sentinel_port: int
    db: int = 0
    clients: list[redis.Redis] = field(default_factory=list)

    @property
    def replica_port(self) -> int:
        return self.replica.port

    @property
    def url(self) -> str:
        """The fleet's ``sentinel://`` URL of the master."""
        return f"sentinel://127.0.0.1:{self.sentinel_port}/{self.db}?master={MASTER}"

    def ask(self) -> redis.Redis:
        client = redis.Redis(port=self.sentinel_port, socket_timeout=2)
        self.clients.append(client)
        return client

    def master_port(self) -> int:
        _host, port = self.ask().sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def server(self, port: int) -> redis.Redis:
        client = redis.Redis(port=port, db=self.db, socket_timeout=2)
        self.clients.append(client)
        return client

    def replicated(self, timeout_ms: int = 5000) -> None:
        """Wait until the replica has every write made so far on the primary."""
        primary = self.server(self.master_port())
        primary.set("sentinel-group:mark", time.time())
        assert primary.wait(1, timeout_ms) == 1, "the replica did not confirm in time"

    def kill_primary(self) -> None:
        """SIGKILL the primary, as a host crash; the sentinel fails over to the replica."""
        self.primary.kill()

    def wait_failover(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.master_port() == self.replica_port and \
                        self.server(self.replica_port).info("replication")["role"] == "master":
                    return
            except redis.RedisError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the sentinel did not promote the replica in {timeout_s} s")

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.sentinel.terminate()
        try:
            self.sentinel.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.sentinel.kill()
        self.replica.stop()
        self.primary.stop()


def _start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=0.5).ping():
                return process
        except redis.RedisError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{args[:2]} did not answer on port {port}")


def start_group(workdir: Path, *, db: int = 0) -> SentinelGroup:
    """Primary, replica and sentinel, once the sentinel knows the replica in sync."""
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server to start a Sentinel group with")
    primary_dir, replica_dir, sentinel_dir = (workdir / n for n in ("primary", "replica",
                                                                     "sentinel"))
    for folder in (primary_dir, replica_dir, sentinel_dir):
        folder.mkdir()
    primary = start_private(workdir=primary_dir, persistent=True, appendfsync="everysec")
    primary_port = int(primary.url.rsplit(":", 1)[1].split("/")[0])
    replica = Replica(primary, replica_dir)
    sentinel_port = free_port()
    config = sentinel_dir / "sentinel.conf"
    config.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {sentinel_dir}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 1\n"
        f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n")
    sentinel = _start([binary, str(config), "--sentinel"], sentinel_port)
    group = SentinelGroup(primary=primary, replica=replica, sentinel=sentinel,
                          sentinel_port=sentinel_port, db=db)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        replicas = group.ask().sentinel_slaves(MASTER)
        if replicas and replicas[0].get("master-link-status") == "ok":
            group.replicated()
            return group
        time.sleep(0.2)
    group.close()
    raise RuntimeError("the sentinel never saw the replica in sync")


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = start_group(tmp_path)
    yield group
    group.close()
