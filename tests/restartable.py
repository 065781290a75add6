"""A private Redis that a test stops, or SIGKILLs, and starts again on the same port and
append-only file, as a restart or a crash of production's Redis (tests only).

Import the fixture where it is used: ``from tests.restartable import restartable_redis``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from o2c_workers.dev.redis_runtime import RedisHandle, free_port, start_private


@dataclass
class RestartableRedis:
    port: int
    data: Path
    handle: RedisHandle | None = None
    clients: list[redis.Redis] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def client(self) -> redis.Redis:
        """A client of the server as started last (closed after the test)."""
        return self.clients[-1]

    def start(self) -> redis.Redis:
        """Start it (again) on its port and data; a new client of it."""
        self.handle = start_private(port=self.port, workdir=self.data, persistent=True)
        self.clients.append(redis.Redis.from_url(self.url))
        return self.client

    def stop(self) -> None:
        """A clean stop; the data stays for the next start."""
        assert self.handle is not None
        self.handle.stop(keep_data=True)

    def kill(self) -> None:
        """SIGKILL, as a crash: what the append-only file holds is what comes back."""
        assert self.handle is not None
        self.handle.kill()

    def close(self) -> None:
        for client in self.clients:
            client.close()
        if self.handle is not None:
            self.handle.stop()


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    """Started: ``restartable_redis.start()`` again after a ``stop()`` or a ``kill()``."""
    data = tmp_path / "redis"
    data.mkdir()
    server = RestartableRedis(free_port(), data)
    server.start()
    yield server
    server.close()
