"""Every process refuses, at start, a broker it cannot serve (real processes, real Redis)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import redis

from o2c_workers.amqp import topology
from o2c_workers.amqp.depth import depth
from o2c_workers.dev.redis_runtime import RedisHandle, start_private, with_db
from o2c_workers.dlq import DeadLetterStore, Status
from o2c_workers.domains import DOMAINS, SWEEP_QUEUE
from o2c_workers.receiver.soap import ACK
from tests import soapmsg
from tests.dlq.conftest import worker_entry
from tests.helpers import queued
from tests.plugins.workers import start_worker
from tests.rabbitmq import ctl
from tests.receiver.conftest import TOKEN
from tests.receiver.test_gunicorn import Gunicorn

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: A process that starts on a refused broker would run for ever: it must exit well before.
START_TIMEOUT_S = 60


@pytest.fixture
def private() -> Iterator[RedisHandle]:
    """A Redis of this test's own: two of its databases stand for a split state and broker."""
    handle = start_private()
    yield handle
    handle.stop()


def env_for(state: str, broker: str) -> dict[str, str]:
    return dict(os.environ, O2C_REDIS_URL=state, O2C_BROKER_URL=broker, O2C_WEBHOOK_TOKEN=TOKEN,
                O2C_SALESFORCE_ORG_IDS=soapmsg.ORG_ID, PYTHONPATH=str(ROOT))


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, text=True,
                              capture_output=True, timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{args} started and ran on a broker it cannot serve: {exc.stderr!r}")


def split(private: RedisHandle) -> tuple[str, str]:
    return with_db(private.url, 0), with_db(private.url, 1)


def test_split_urls_never_ack_a_message_no_worker_reads(private):
    """Before the rule the receiver answered Ack and wrote the task into the state Redis,
    where no worker reads: never processed, never dead-lettered."""
    state, broker = split(private)
    try:
        server = Gunicorn(state, workers=1, env={"O2C_BROKER_URL": broker})
    except RuntimeError as refused:
        assert "O2C_BROKER_URL" in str(refused) and "O2C_REDIS_URL" in str(refused)
        return
    try:
        answer = server.post(soapmsg.won_message([1]))
    finally:
        server.stop()
    consumed = redis.Redis.from_url(broker)
    assert answer.content != ACK or queued(consumed, "customer"), (
        "acknowledged, but the task is not on the broker the workers consume: "
        f"{len(queued(redis.Redis.from_url(state), 'customer'))} on the state Redis")


def test_the_receiver_refuses_to_start(private):
    state, other = split(private)
    result = run(["-m", "gunicorn", "-c", "python:config.gunicorn",
                  "o2c_workers.wsgi:create_app()", "-b", "127.0.0.1:0", "-w", "1"],
                 env_for(state, other))
    assert result.returncode != 0
    assert "O2C_BROKER_URL" in result.stderr and "O2C_REDIS_URL" in result.stderr


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_a_worker_and_beat_refuse_to_start(private, command):
    state, other = split(private)
    result = run(["-m", "celery", "-A", "o2c_workers", command, "-l", "INFO"],
                 env_for(state, other))
    assert result.returncode != 0, result.stderr
    assert "O2C_BROKER_URL" in result.stderr and "O2C_REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_starts_on_rabbitmq_with_its_topology(redis_url, amqp_url, workers):
    """RabbitMQ is the other broker served: a worker of one queue starts, declares every
    queue of the fleet and binds them for native delayed delivery."""
    workers.append(start_worker(redis_url, queues="customer", env={"O2C_BROKER_URL": amqp_url}))
    log = workers[0].log_text()
    assert "Native delayed delivery will not be available" not in log
    assert "Traceback" not in log and "guest:guest" not in log
    found = depth(amqp_url, [*DOMAINS, SWEEP_QUEUE, topology.DEAD_QUEUE])
    assert found.queued == 0 and found.delayed == 0
    assert "#.pricing" in ctl("list_bindings", "-p", unquote(urlsplit(amqp_url).path[1:]),
                              "routing_key")


def test_beat_starts_on_rabbitmq(redis_url, amqp_url):
    beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "o2c_workers", "beat",
                             "-l", "INFO"], cwd=ROOT, env=env_for(redis_url, amqp_url),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(8)
        assert beat.poll() is None
    finally:
        beat.terminate()
        out, _ = beat.communicate(timeout=30)
    assert "beat: Starting..." in out
    assert "Traceback" not in out and "guest:guest" not in out


def test_dlq_requeue_refuses_and_changes_nothing(private):
    state, other = split(private)
    client = redis.Redis.from_url(state)
    store = DeadLetterStore(client, prefix="o2c")
    entry = store.add(worker_entry(1))
    result = run(["-m", "o2c_workers.cli", "dlq", "requeue", entry.id], env_for(state, other))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "requeued" not in result.stdout
    assert "O2C_BROKER_URL" in result.stderr and "O2C_REDIS_URL" in result.stderr
    after = store.get(entry.id)
    assert after is not None and after.status == Status.OPEN
    assert client.llen("pricing") == 0 and redis.Redis.from_url(other).dbsize() == 0


def test_a_same_server_spelling_runs(private):
    """``localhost`` and ``127.0.0.1``, with and without the default database: one server."""
    port = private.url.rsplit(":", 1)[1].split("/")[0]
    state, broker = f"redis://127.0.0.1:{port}/0", f"redis://localhost:{port}"
    server = Gunicorn(state, workers=1, env={"O2C_BROKER_URL": broker})
    try:
        answer = server.post(soapmsg.won_message([1]))
    finally:
        server.stop()
    assert answer.content == ACK
    assert len(queued(redis.Redis.from_url(broker), "customer")) == 1


@pytest.mark.parametrize("command", [
    ["resync", "--since", "1h"], ["reconcile", "--fix", "--since", "1h"], ["report"],
    ["report", "--stalled"], ["status", "0065g0000000001AAA"], ["dlq", "list"]])
def test_every_o2c_command_on_the_queues_refuses(private, command):
    state, other = split(private)
    result = run(["-m", "o2c_workers.cli", *command], env_for(state, other))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "O2C_BROKER_URL" in result.stderr + result.stdout
    assert redis.Redis.from_url(state).dbsize() == 0


@pytest.mark.parametrize("command", [
    ["report"], ["report", "--stalled"], ["status", "0065g0000000001AAA"], ["dlq", "list"]])
def test_the_o2c_commands_that_read_the_state_run_on_rabbitmq(private, amqp_url, command):
    state, _ = split(private)
    result = run(["-m", "o2c_workers.cli", *command], env_for(state, amqp_url))
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert "O2C_BROKER_URL" not in result.stderr + result.stdout
    assert "guest:guest" not in result.stderr + result.stdout
