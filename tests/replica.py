"""A real Redis replica (``redis-server --replicaof``) of a primary started for a test, which
the test stops, starts, pauses and resumes (tests only)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis

from o2c_workers.dev.redis_runtime import RedisHandle, answers, free_port, redis_server_binary

#: How long a replica may take to (re)connect and sync with the primary.
SYNC_TIMEOUT_S = 20.0


class Replica:
    """A real ``redis-server --replicaof`` of ``primary``, stopped and started by the test."""

    def __init__(self, primary: RedisHandle, workdir: Path) -> None:
        self.primary_port = int(primary.url.rsplit(":", 1)[1].split("/")[0])
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        binary = redis_server_binary()
        assert binary is not None, "these tests need redis-server"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir),
             "--replicaof", "127.0.0.1", str(self.primary_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while time.monotonic() < deadline:
            if answers(self.url) and self.client().info("replication").get(
                    "master_link_status") == "up":
                return
            time.sleep(0.05)
        raise RuntimeError("the replica did not sync with its primary")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self, primary: redis.Redis) -> None:
        """Still connected, and counted by the primary as having everything so far, but from
        now on reading and acknowledging nothing (a lagging replica)."""
        assert self.process is not None
        primary.set("test:synced", "1")
        assert primary.wait(1, int(SYNC_TIMEOUT_S * 1000)) == 1
        self.process.send_signal(signal.SIGSTOP)

    def resume(self, primary: redis.Redis) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while primary.wait(1, 100) < 1:
            assert time.monotonic() < deadline, "the replica did not catch up"
