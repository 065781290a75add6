"""A private RabbitMQ node on free loopback ports, for ``o2c chaos --broker rabbitmq``.

The machine's own node is never touched: the private node has a name, ports, a data folder
and a configuration file of its own, so it can be killed and started again mid-run. It is
the installed ``rabbitmq-server`` (``RABBITMQ_*`` environment variables, the distribution's
layout); run as root, that script runs the node as the ``rabbitmq`` user, so the data folder
is handed to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: How long a node may take to start (it boots in about 5 s on an idle machine).
START_TIMEOUT_S = 90.0
#: Ports the RabbitMQ command line tools use for their own distribution: never ours.
CLI_PORTS = range(35672, 35683)


class NoRabbitMQServer(RuntimeError):
    """``rabbitmq-server`` or ``rabbitmqctl`` is not installed, or the node did not start."""


def binaries() -> tuple[str, str]:
    server, ctl = shutil.which("rabbitmq-server"), shutil.which("rabbitmqctl")
    if server is None or ctl is None:
        raise NoRabbitMQServer("rabbitmq-server and rabbitmqctl must be installed to start a "
                               "private RabbitMQ node (apt-get install rabbitmq-server)")
    return server, ctl


def _free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in CLI_PORTS:
            return port


@dataclass
class RabbitNode:
    """One private node: ``url`` is its AMQP URL (the default vhost, guest on loopback)."""

    name: str
    port: int
    dist_port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "pid"

    def env(self) -> dict[str, str]:
        return {**os.environ,
                "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq.conf"),
                "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(self.pid_file)}

    def ctl(self, *args: str, timeout_s: float = 60.0) -> str:
        _, ctl = binaries()
        done = subprocess.run([ctl, "-q", "-n", self.name, *args], capture_output=True,
                              text=True, timeout=timeout_s, env=self.env(), check=False)
        if done.returncode != 0:
            raise NoRabbitMQServer(f"rabbitmqctl {' '.join(args)} on {self.name}: "
                                   f"{(done.stderr or done.stdout).strip()[:400]}")
        return done.stdout

    def start(self) -> None:
        """Start the node (again: from the same data folder) and wait until it serves."""
        server, _ = binaries()
        self.pid_file.unlink(missing_ok=True)
        log = (self.workdir / "server.log").open("ab")
        self.process = subprocess.Popen([server], env=self.env(), cwd=self.workdir,
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.pid_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise NoRabbitMQServer(f"RabbitMQ node {self.name} did not start; see "
                                       f"{self.workdir / 'server.log'}")
            time.sleep(0.1)
        self.ctl("wait", str(self.pid_file), "--timeout", str(int(START_TIMEOUT_S)),
                 timeout_s=START_TIMEOUT_S + 10)

    def beam_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM, as a crash would; its data folder stays."""
        pid = self.beam_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap()

    def stop(self, *, keep_data: bool = True) -> None:
        """Stop the node cleanly (it writes everything down first)."""
        if self.beam_pid() is not None:
            try:
                self.ctl("stop", timeout_s=60)
            except (NoRabbitMQServer, subprocess.TimeoutExpired):
                self.kill()
        self._reap()
        if not keep_data:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        """A clean stop and a start: quorum queues declared since the start are written
        down for good (RabbitMQ 3.10 flushes a new queue's registration lazily, and a node
        killed in the minutes after a queue was first declared can come back without it)."""
        self.stop()
        self.start()

    def _reap(self) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None
        deadline = time.monotonic() + 30
        pid = self.beam_pid()
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_private(*, workdir: Path | None = None) -> RabbitNode:
    """A new private node, started; ``workdir`` holds its data, logs and configuration."""
    binaries()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="o2c-rabbitmq-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port, dist_port = _free_port(), _free_port()
    node = RabbitNode(f"o2c-{port}@localhost", port, dist_port, workdir)
    (workdir / "rabbitmq.conf").write_text(
        f"listeners.tcp.local = 127.0.0.1:{port}\n"
        # A chaos run's queues are small; never block publishers on this machine's disk.
        "disk_free_limit.absolute = 50MB\n")
    (workdir / "enabled_plugins").write_text("[].\n")
    if os.geteuid() == 0:
        _hand_to_rabbitmq_user(workdir)
    node.start()
    return node


def _hand_to_rabbitmq_user(workdir: Path) -> None:
    """As root, ``rabbitmq-server`` runs the node as ``rabbitmq``: it must own its folder."""
    try:
        user = pwd.getpwnam("rabbitmq")
    except KeyError:
        return
    for path in [workdir, *workdir.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
