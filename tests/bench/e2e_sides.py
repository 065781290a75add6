"""The two sides of the end-to-end benchmark as the processes a user runs, and what /proc
says they cost.

- **ours**: the Procfile's ``web`` line and every worker line (``celery ... worker``), with
  nothing set beyond the connections (the shipped defaults: the Procfile's own sizing);
- **plain**: the same gunicorn settings serving ``tests.bench.plain_receiver``, and one
  ``celery worker`` of ``tests.bench.plain_chain`` with as many pool processes as ours runs
  in all, counted from /proc while ours runs.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from o2c_workers.dev import procfile
from o2c_workers.dev.fleet import Fleet, ManagedProcess, wait_http
from tests.bench.procstat import children, stat_fields

ROOT = Path(__file__).resolve().parents[2]
#: Variables of the caller's environment that would change either side's defaults.
_DROPPED_PREFIXES = ("O2C_", "PLAIN_", "WEB_CONCURRENCY", "WORKER_CONCURRENCY", "PROMETHEUS_")
START_S = 90.0


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_DROPPED_PREFIXES) and not k.endswith("_CONCURRENCY")}
    # The Procfile names `gunicorn` and `celery`: the ones installed next to this Python.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def is_worker(ptype: procfile.ProcessType) -> bool:
    return ptype.command.startswith("celery ") and " worker " in f"{ptype.command} "


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children(current)
    return out


def tree_cpu_s(pid: int) -> float:
    """CPU of the tree so far, children it has already reaped included."""
    ticks = 0
    for fields in (stat_fields(p) for p in tree(pid)):
        if fields:
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def _kib(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class Memory:
    processes: int
    rss_mib: float
    #: Proportional set size: pages shared after a fork counted once in all.
    pss_mib: float


def memory(pid: int) -> Memory:
    pids = tree(pid)
    rss = sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids)
    pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    return Memory(len(pids), rss / 1024, pss / 1024)


@dataclass
class Running:
    """One side's processes, up and ready."""

    fleet: Fleet
    #: Process type → its main process.
    types: dict[str, ManagedProcess]
    outbound_url: str

    def cpu_s(self) -> float:
        return sum(tree_cpu_s(p.pid) for p in self.types.values())

    def memory(self) -> dict[str, Memory]:
        return {name: memory(p.pid) for name, p in self.types.items()}

    def pool_processes(self, names: list[str]) -> int:
        return sum(len(children(self.types[n].pid)) for n in names)

    def stop(self) -> None:
        self.fleet.stop()


@dataclass
class Side:
    label: str
    name: str
    port: int
    #: ``ours`` (the Procfile) or ``plain`` (the plain chain).
    kind: str = "ours"
    #: Variables this side sets beyond the bench's own (the broker, for one).
    env: dict[str, str] = field(default_factory=dict)
    #: The plain side's sizes, taken from ours once it has run (web workers, pool processes).
    sizes: dict[str, int] = field(default_factory=dict)

    def start(self, env: dict[str, str], log_dir: Path) -> Running:
        token = secrets.token_urlsafe(16)
        url = f"http://127.0.0.1:{self.port}"
        env = {**env, **self.env}
        if self.kind == "ours":
            return self._ours({**env, "O2C_WEBHOOK_TOKEN": token}, log_dir, url, token)
        return self._plain({**env, "PLAIN_WEBHOOK_TOKEN": token}, log_dir, url, token)

    def _ours(self, env: dict[str, str], log_dir: Path, url: str, token: str) -> Running:
        lines = procfile.load()
        fleet = Fleet({**env, "PORT": str(self.port)}, log_dir)
        types = {}
        try:
            types["web"] = fleet.start_process_type(lines["web"], cwd=ROOT)
            for name, ptype in lines.items():
                if is_worker(ptype):
                    types[name] = fleet.start_process_type(ptype, cwd=ROOT)
            _ready(types, f"{url}/readyz")
        except BaseException:
            fleet.stop()
            raise
        running = Running(fleet, types, f"{url}/salesforce/outbound?token={token}")
        workers = [n for n in types if n != "web"]
        self.sizes = {"web": running.pool_processes(["web"]),
                      "pool": running.pool_processes(workers)}
        return running

    def _plain(self, env: dict[str, str], log_dir: Path, url: str, token: str) -> Running:
        if not self.sizes:
            raise RuntimeError("the plain side takes its sizes from ours: run ours first")
        web = procfile.ProcessType("web", (
            "gunicorn -c python:config.gunicorn tests.bench.plain_receiver:app "
            f"--bind 127.0.0.1:{self.port} --workers {self.sizes['web']}"))
        worker = procfile.ProcessType("worker", (
            f"celery -A tests.bench.plain_chain worker -c {self.sizes['pool']} "
            "--without-mingle --without-gossip -l INFO"))
        fleet = Fleet(env, log_dir)
        try:
            types = {p.name: fleet.start_process_type(p, cwd=ROOT) for p in (web, worker)}
            _ready(types, f"{url}/")
        except BaseException:
            fleet.stop()
            raise
        return Running(fleet, types, f"{url}/salesforce/outbound?token={token}")


def _ready(types: dict[str, ManagedProcess], url: str) -> None:
    wait_http(url, types["web"], timeout_s=START_S)
    for name, proc in types.items():
        if name != "web":
            proc.wait_ready(timeout_s=START_S)
