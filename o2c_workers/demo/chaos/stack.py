"""Start what a user starts: a Redis with AOF, ``o2c sandbox``, and the Procfile's lines.

Nothing of the fleet is configured beyond what it needs to connect (URLs, credentials, the
webhook token, ``PORT``): every ``O2C_*`` variable of the caller's environment is dropped so
the fleet runs with the shipped defaults, and the Procfile's own concurrency defaults apply.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from o2c_workers import sizing
from o2c_workers.celery_app import DOMAINS
from o2c_workers.demo.chaos.plan import ChaosOptions
from o2c_workers.dev import procfile
from o2c_workers.dev.fleet import Fleet, ManagedProcess, wait_http
from o2c_workers.dev.rabbitmq_node import RabbitNode
from o2c_workers.dev.rabbitmq_node import start_private as start_private_rabbitmq
from o2c_workers.dev.redis_runtime import RedisHandle, free_port, start_private

#: Variables of the caller's environment that would change the fleet's shipped defaults.
_DROPPED_PREFIXES = ("O2C_", "WEB_CONCURRENCY", "WORKER_CONCURRENCY", "PROMETHEUS_",
                     *(sizing.variable(domain) for domain in DOMAINS))
#: How long ``o2c sandbox`` may take to announce itself.
SANDBOX_START_S = 60.0


@dataclass
class Stack:
    """Everything one run started."""

    run_dir: Path
    redis: RedisHandle
    redis_port: int
    sandbox: ManagedProcess
    fleet: Fleet
    erp_url: str
    sf_url: str
    ca_file: str
    receiver_port: int
    procfile_types: dict[str, procfile.ProcessType]
    #: The private RabbitMQ node the fleet's broker is on (``--broker rabbitmq``), else None.
    rabbitmq: RabbitNode | None = None

    @property
    def web(self) -> ManagedProcess:
        return self.process("web")

    def process(self, name: str) -> ManagedProcess:
        return next(p for p in self.fleet.processes if p.name == name)

    def sf_session(self) -> requests.Session:
        http = requests.Session()
        http.trust_env = False
        http.verify = self.ca_file
        return http

    def restart_redis(self) -> None:
        """Start Redis again on the same port from the same data folder (its AOF)."""
        self.redis = start_private(port=self.redis_port, workdir=self.redis.workdir,
                                   persistent=True, appendfsync="everysec")


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES)}
    # The Procfile names `gunicorn` and `celery`: the ones installed next to this Python.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _sandbox_argv(opts: ChaosOptions, *, erp_port: int, sf_port: int, receiver: str,
                  token: str, state_dir: Path) -> list[str]:
    argv = [sys.executable, "-m", "o2c_workers.cli", "sandbox", "--seed", str(opts.seed),
            "--opportunities", str(opts.opportunities), "--accounts", str(opts.accounts),
            "--erp-port", str(erp_port), "--sf-port", str(sf_port),
            "--erp-webhook-url", f"{receiver}/erp/events",
            "--outbound-url", f"{receiver}/salesforce/outbound?token={token}",
            "--state-dir", str(state_dir),
            "--error-rate", str(opts.erp_error_rate),
            "--timeout-after-commit-rate", str(opts.erp_lost_answer_rate),
            "--rate-limit-per-s", str(opts.erp_rate_limit_per_s),
            "--latency-ms", str(opts.erp_latency_ms),
            "--latency-jitter-ms", str(opts.erp_latency_jitter_ms),
            "--duplicate-rate", str(opts.sf_duplicate_rate),
            "--invoice-delay-s", str(opts.erp_invoice_delay_s)]
    return [*argv, "--reorder"] if opts.sf_reorder else argv


def _announced(log: Path, proc: ManagedProcess) -> dict[str, str]:
    """The ``export O2C_…=…`` lines ``o2c sandbox`` prints once both simulators listen."""
    deadline = time.monotonic() + SANDBOX_START_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Ctrl-C stops." in text:
            lines = [ln.strip().removeprefix("export ") for ln in text.splitlines()
                     if ln.strip().startswith("export ")]
            return dict(line.split("=", 1) for line in lines)
        if not proc.alive():
            break
        time.sleep(0.2)
    raise RuntimeError(f"o2c sandbox did not start:\n{proc.log_tail()}")


def _start_sandbox(opts: ChaosOptions, run_dir: Path, receiver: str,
                   token: str) -> tuple[Fleet, dict[str, str]]:
    """``o2c sandbox`` in a process of its own, as a user runs it next to the fleet."""
    erp_port, sf_port = free_port(), free_port()
    argv = _sandbox_argv(opts, erp_port=erp_port, sf_port=sf_port, receiver=receiver,
                         token=token, state_dir=run_dir / "sandbox-tls")
    box = Fleet(env={**_base_env(), "PYTHONUNBUFFERED": "1", "COLUMNS": "400"},
                log_dir=run_dir / "logs")
    proc = box.start_process_type(procfile.ProcessType("sandbox", shlex.join(argv)),
                                  cwd=run_dir)
    assert proc.log_path is not None
    try:
        return box, _announced(proc.log_path, proc)
    except BaseException:
        box.stop()
        raise


def start_broker(opts: ChaosOptions, run_dir: Path) -> RabbitNode | None:
    """A private RabbitMQ node for ``--broker rabbitmq``, its queues declared and written
    down for good (a clean restart: ``RabbitNode.restart``) before the fleet starts."""
    if opts.broker != "rabbitmq":
        return None
    node = start_private_rabbitmq(workdir=run_dir / "rabbitmq")
    try:
        declare_topology(node.url)
        node.restart()
    except BaseException:
        node.stop(keep_data=False)
        raise
    return node


def declare_topology(url: str) -> None:
    from kombu.connection import Connection

    from o2c_workers.amqp import topology

    with Connection(url) as conn:  # type: ignore[no-untyped-call]
        channel = conn.channel()
        for queue in [*topology.task_queues(), topology.dead_letter_queue()]:
            queue.bind(channel).declare()  # type: ignore[no-untyped-call]


@contextmanager
def started(opts: ChaosOptions, run_dir: Path) -> Iterator[Stack]:
    """Redis (and RabbitMQ), the sandbox, then the Procfile's web line and one worker line
    per queue."""
    redis_port, receiver_port = free_port(), free_port()
    token = secrets.token_urlsafe(24)
    receiver = f"http://127.0.0.1:{receiver_port}"
    (run_dir / "redis").mkdir(parents=True, exist_ok=True)
    handle = start_private(port=redis_port, workdir=run_dir / "redis", persistent=True,
                           appendfsync="everysec")
    node: RabbitNode | None = None
    try:
        node = start_broker(opts, run_dir)
        box, exported = _start_sandbox(opts, run_dir, receiver, token)
    except BaseException:
        handle.stop()
        if node is not None:
            node.stop(keep_data=False)
        raise
    env = {**_base_env(), **exported, "O2C_REDIS_URL": handle.url,
           "O2C_WEBHOOK_TOKEN": token, "PORT": str(receiver_port),
           **({"O2C_BROKER_URL": node.url} if node is not None else {})}
    fleet = Fleet(env, run_dir / "logs")
    stack: Stack | None = None
    try:
        stack = Stack(run_dir, handle, redis_port, box.processes[0], fleet,
                      exported["O2C_ERP_BASE_URL"], exported["O2C_SALESFORCE_INSTANCE_URL"],
                      exported["O2C_SALESFORCE_CA_BUNDLE"], receiver_port, procfile.load(),
                      rabbitmq=node)
        _start_fleet(stack)
        yield stack
    finally:
        # Whatever failed (a Procfile that cannot be read included), nothing is left running.
        _stop_fleet(fleet)
        box.stop()
        (handle if stack is None else stack.redis).stop()  # a restart replaced the handle
        if node is not None:
            node.stop(keep_data=True)


def _start_fleet(stack: Stack) -> None:
    cwd = procfile.PROJECT_PROCFILE.parent
    web = stack.fleet.start_process_type(stack.procfile_types["web"], cwd=cwd)
    workers = [stack.fleet.start_process_type(stack.procfile_types[d], cwd=cwd)
               for d in DOMAINS]
    wait_http(f"http://127.0.0.1:{stack.receiver_port}/readyz", web)
    for worker in workers:
        worker.wait_ready(timeout_s=90)


def _stop_fleet(fleet: Fleet) -> None:
    """SIGTERM to every process at once (warm shutdowns in parallel), then wait for each."""
    for proc in fleet.processes:
        if proc.alive():
            proc.process.send_signal(signal.SIGTERM)
    fleet.stop()


def worker_names() -> list[str]:
    """The worker process types, one per queue."""
    return list(DOMAINS)
