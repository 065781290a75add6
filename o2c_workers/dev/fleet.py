"""Start and stop the fleet's processes: the receiver (gunicorn), one worker per queue and
Flower. The demo and the end-to-end tests run the same processes as production does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

from o2c_workers.celery_app import DOMAINS
from o2c_workers.dev.procfile import ProcessType

#: How long a process may take to answer before it counts as failed to start.
START_TIMEOUT_S = 30.0


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None
    log_file: IO[bytes] | None = field(default=None, repr=False)
    #: How it was started, so that a supervisor can start it again (``Fleet.respawn``).
    argv: list[str] = field(default_factory=list, repr=False)
    extra_env: dict[str, str] = field(default_factory=dict, repr=False)
    cwd: Path | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, *, timeout_s: float = 20.0) -> None:
        """SIGTERM (a warm shutdown for workers), then SIGKILL if it will not go."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def children(self) -> list[int]:
        """The pids of its child processes (a worker's pool, gunicorn's workers)."""
        found = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True,
                               text=True, check=False).stdout.split()
        return [int(pid) for pid in found]

    def kill(self) -> None:
        """SIGKILL the process and its children, as a crash or an OOM kill would."""
        try:
            # Stopped first, it cannot fork a replacement child while we look for them.
            os.kill(self.pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
        for pid in [*self.children(), self.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)

    def wait_ready(self, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait for a Celery worker's "ready." line in its log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            if " ready." in self.log_text():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} was not ready in {timeout_s:.0f}s:\n{self.log_tail()}")

    def log_text(self) -> str:
        """All it has logged so far ("" when it logs nowhere)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        return self.log_text().splitlines()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_lines()[-lines:])


@dataclass
class Fleet:
    """The processes of one run, sharing one environment."""

    env: dict[str, str]
    log_dir: Path | None = None
    processes: list[ManagedProcess] = field(default_factory=list)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, *,
               cwd: Path | None = None) -> ManagedProcess:
        log_path = log_file = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.log_dir / f"{name}.log"
            log_file = log_path.open("ab")
        process = subprocess.Popen(
            argv, env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL, cwd=cwd,
            stdout=log_file or subprocess.DEVNULL, stderr=log_file or subprocess.DEVNULL)
        managed = ManagedProcess(name, process, log_path, log_file, argv=argv,
                                 extra_env=dict(env or {}), cwd=cwd)
        self.processes.append(managed)
        return managed

    def start_process_type(self, ptype: ProcessType, *, cwd: Path,
                           env: dict[str, str] | None = None) -> ManagedProcess:
        """A Procfile line run as a Procfile runner runs it (``sh -c``, from ``cwd``)."""
        return self._spawn(ptype.name, ptype.argv(), env, cwd=cwd)

    def respawn(self, dead: ManagedProcess) -> ManagedProcess:
        """Start a process that has exited again, as a supervisor would; same log file."""
        if dead.alive():
            raise RuntimeError(f"{dead.name} is still running")
        dead.stop()
        self.processes.remove(dead)
        return self._spawn(dead.name, dead.argv, dead.extra_env, cwd=dead.cwd)

    def start_receiver(self, port: int, *, workers: int = 2) -> ManagedProcess:
        proc = self._spawn("receiver", [
            sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn",
            "o2c_workers.wsgi:create_app()", "-b", f"127.0.0.1:{port}", "-w", str(workers)])
        wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        return proc

    def start_worker(self, queues: str, *, concurrency: int = 2, name: str | None = None,
                     extra: list[str] | None = None) -> ManagedProcess:
        label = name or queues.replace(",", "+")
        return self._spawn(f"worker-{label}", [
            sys.executable, "-m", "celery", "-A", "o2c_workers", "worker", "-Q", queues,
            "-c", str(concurrency), "-n", f"{label}@%h", "-l", "INFO", "--without-mingle",
            "--without-gossip", *(extra or [])])

    def start_workers(self, *, concurrency: int = 2) -> list[ManagedProcess]:
        """One worker process type per domain queue, as the Procfile runs them."""
        return [self.start_worker(domain, concurrency=concurrency) for domain in DOMAINS]

    def start_flower(self, port: int, *, auth: str, db_path: Path) -> ManagedProcess:
        """Flower with basic auth from the environment (never on the command line)."""
        proc = self._spawn("flower", [
            sys.executable, "-m", "celery", "-A", "o2c_workers", "flower",
            f"--port={port}", "--address=127.0.0.1", "--persistent=True", f"--db={db_path}",
            "--purge_offline_workers=60"], env={"FLOWER_BASIC_AUTH": auth})
        wait_http(f"http://127.0.0.1:{port}/healthcheck", proc)
        return proc

    def stop(self) -> None:
        """Stop every process at once: each gets its SIGTERM (a warm shutdown) before any is
        waited for, so the fleet takes as long as its slowest process, not their sum."""
        for proc in reversed(self.processes):
            if proc.alive():
                proc.process.send_signal(signal.SIGTERM)
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()


def wait_http(url: str, proc: ManagedProcess, *, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited at start:\n{proc.log_tail()}")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name} did not answer at {url}:\n{proc.log_tail()}")
