"""The dead-letter requeue on RabbitMQ: at most once out of the queue. Claim, publish with
confirm, mark; a failed publish puts the claim back; a crash between leaves a visible
``requeuing`` entry that only an explicit ``--reclaim`` requeues again."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from pydantic import SecretStr
from typer.testing import CliRunner

from config import Settings
from o2c_workers import app as celery_app
from o2c_workers.amqp.publish import Publisher
from o2c_workers.cli import cli
from o2c_workers.dev.redis_runtime import RedisHandle
from o2c_workers.dlq import DeadLetterStore, Status, ops
from o2c_workers.dlq.errors import Conflict, LeftRequeuing, NotPublished
from o2c_workers.dlq.query import Filter
from o2c_workers.receiver.app import Receiver
from o2c_workers.receiver.replan import build_dlq
from tests.amqp.conftest import Broker, amqp_port, queue_lists, via
from tests.amqp.test_publish import probe
from tests.dlq.conftest import worker_entry
from tests.helpers import call_wsgi
from tests.plugins.workers import wait_for
from tests.proxy import TcpProxy
from tests.refusing import out_of_memory, private_redis  # noqa: F401  (a fixture)

TRACE = "0065g0000000001AAA"


def actions(store: DeadLetterStore, entry_id: str) -> list[str]:
    """The entry's audit records, oldest first."""
    return [r["action"] for r in reversed(store.audit_log(entry_id=entry_id))]


def on(dlq: ops.Dlq, publisher: Publisher) -> ops.Dlq:
    """``dlq`` publishing through ``publisher`` (one of a proxy's)."""
    return ops.Dlq(dlq.store, dlq.replanner, dlq.actor, publisher=publisher)


@pytest.fixture
def dlq(amqp_settings: Settings, redis_client: redis.Redis) -> ops.Dlq:
    return build_dlq(amqp_settings, client=redis_client, actor="test")


def test_a_requeue_claims_publishes_then_marks(dlq: ops.Dlq, broker: Broker,
                                               redis_client: redis.Redis):
    assert dlq.publisher is not None
    entry = dlq.store.add(worker_entry(1, trace_key=TRACE))
    outcome = ops.requeue_one(dlq, entry.id)
    [message] = broker.take("pricing")
    assert message["headers"]["task"] == "o2c.pricing.probe_step"
    assert message["headers"]["id"] == outcome["task_id"]
    assert message["args"] == entry.args
    assert [s["task"] for s in message["embed"]["chain"]] == ["o2c.order.probe_finish"]
    done = dlq.store.get(entry.id)
    assert done is not None and done.status is Status.REQUEUED
    assert done.requeued_task_id == outcome["task_id"] and done.requeue_claim
    assert done.rev == entry.rev + 2
    assert actions(dlq.store, entry.id) == ["requeue_claim", "requeue"]
    with pytest.raises(Conflict, match="requeued, not open"):
        ops.requeue_one(dlq, entry.id)
    assert broker.count("pricing") == 0
    assert queue_lists(redis_client) == 0


def test_of_many_operators_at_once_one_requeues(dlq: ops.Dlq, broker: Broker):
    entry = dlq.store.add(worker_entry(1, trace_key=TRACE))
    start = threading.Barrier(6)
    results: list[Any] = []

    def operator() -> None:
        start.wait()
        try:
            results.append(ops.requeue_one(dlq, entry.id))
        except Conflict as exc:
            results.append(exc)

    threads = [threading.Thread(target=operator) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(r, dict) for r in results) == 1
    assert broker.count("pricing") == 1


def test_a_failed_publish_puts_the_claim_back(dlq: ops.Dlq, broker: Broker, amqp_url: str):
    entry = dlq.store.add(worker_entry(1, trace_key=TRACE))
    proxy = TcpProxy(amqp_port(amqp_url))
    proxy.cut()
    publisher = Publisher(via(amqp_url, proxy.port))
    try:
        with pytest.raises(NotPublished, match="the entry is open again"):
            ops.requeue_one(on(dlq, publisher), entry.id)
        back = dlq.store.get(entry.id)
        assert back is not None and back.status is Status.OPEN
        assert dlq.store.ids() == [entry.id]
        assert actions(dlq.store, entry.id) == ["requeue_claim", "requeue_not_published"]
        report = ops.requeue(on(dlq, publisher), [entry.id])
        assert report.done == [] and "RabbitMQ did not confirm" in report.refused[0]["reason"]
        proxy.restore()
        ops.requeue_one(on(dlq, publisher), entry.id)
    finally:
        publisher.close()
        proxy.close()
    requeued = dlq.store.get(entry.id)
    assert requeued is not None and requeued.status is Status.REQUEUED
    assert broker.count("pricing") == 1


@pytest.mark.slow
def test_a_crash_after_the_publish_leaves_it_requeuing_until_reclaimed(
        private_redis: RedisHandle, amqp_settings: Settings, amqp_url: str,  # noqa: F811
        broker: Broker):
    client = redis.Redis.from_url(private_redis.url)
    dlq = build_dlq(amqp_settings, client=client, actor="test")
    entry = dlq.store.add(worker_entry(1, trace_key=TRACE))
    proxy = TcpProxy(amqp_port(amqp_url))
    publisher = Publisher(via(amqp_url, proxy.port))
    failed: list[BaseException] = []
    try:
        publisher.publish([probe("customer")])  # connected, through the proxy
        broker.take("customer")

        def requeue() -> None:
            try:
                ops.requeue_one(on(dlq, publisher), entry.id)
            except BaseException as exc:
                failed.append(exc)

        # The claim is made; while the publish waits for RabbitMQ's confirm (held back by
        # the proxy), Redis starts refusing writes, as a crash of the requeue there would
        # stop it: the message is on its queue, the mark never lands.
        proxy.freeze()
        thread = threading.Thread(target=requeue)
        thread.start()
        wait_for(lambda: dlq.store.get(entry.id).status is Status.REQUEUING, timeout_s=5,
                 what="the claim")
        with out_of_memory(client):
            proxy.restore()
            thread.join(timeout=10)
            [error] = failed
            assert isinstance(error, LeftRequeuing), error
            assert "--reclaim" in error.message
    finally:
        publisher.close()
        proxy.close()
    assert broker.count("pricing") == 1
    stuck = dlq.store.get(entry.id)
    assert stuck is not None and stuck.status is Status.REQUEUING
    # Visible, and never taken by a plain requeue.
    listed = ops.list_entries(dlq, Filter(status=Status.REQUEUING))
    assert [e.id for e in listed.entries] == [entry.id]
    with pytest.raises(Conflict, match="--reclaim"):
        ops.requeue_one(dlq, entry.id)
    assert ops.requeue(dlq, where=Filter()).done == []
    ops.requeue_one(dlq, entry.id, reclaim=True)
    requeued = dlq.store.get(entry.id)
    assert requeued is not None and requeued.status is Status.REQUEUED
    assert broker.count("pricing") == 2
    assert actions(dlq.store, entry.id) == ["requeue_claim", "requeue_claim", "requeue"]
    assert queue_lists(client) == 0


def test_the_command_requeues_to_rabbitmq_and_shows_what_is_left_requeuing(
        amqp_settings: Settings, redis_url: str, amqp_url: str, redis_client: redis.Redis,
        broker: Broker):
    store = DeadLetterStore(redis_client, prefix="o2c")
    fresh = store.add(worker_entry(1, trace_key=TRACE))
    stuck = store.add(worker_entry(2, status="requeuing", requeue_claim="ops:dead"))
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["dlq", *args], env={
            "O2C_REDIS_URL": redis_url, "O2C_BROKER_URL": amqp_url, "COLUMNS": "200"})

    listed = run("list")
    assert listed.exit_code == 0, listed.output
    assert fresh.id in listed.stdout and stuck.id not in listed.stdout
    assert "1 requeuing" in listed.stdout and "--reclaim" in listed.stdout
    assert stuck.id in run("list", "--status", "requeuing").stdout
    done = run("requeue", fresh.id, stuck.id)
    assert done.exit_code == 0, done.output
    assert "requeuing: a requeue claimed it" in done.stdout
    assert broker.count("pricing") == 1
    again = run("requeue", "--status", "requeuing", "--all", "--reclaim")
    assert again.exit_code == 0, again.output
    assert [store.get(e.id).status for e in (fresh, stuck)] == [Status.REQUEUED] * 2
    assert broker.count("pricing") == 2
    assert queue_lists(redis_client) == 0


def test_the_admin_api_requeues_to_rabbitmq(amqp_settings: Settings, redis_client: redis.Redis,
                                            broker: Broker):
    settings = amqp_settings.model_copy(update={"admin_token": SecretStr("adm1n")})
    receiver = Receiver(settings, redis_client=redis_client, celery_app=celery_app)
    store = DeadLetterStore(redis_client, prefix="o2c")
    stuck = store.add(worker_entry(2, status="requeuing", requeue_claim="ops:dead"))
    auth = {"Authorization": "Bearer adm1n"}
    status, _, body = call_wsgi(receiver, "POST", f"/admin/dlq/{stuck.id}/requeue",
                                headers=auth)
    assert status == 409 and b"--reclaim" in body
    status, _, body = call_wsgi(receiver, "POST", f"/admin/dlq/{stuck.id}/requeue",
                                query="reclaim=true", headers=auth)
    assert status == 200, body
    assert broker.count("pricing") == 1
    assert store.get(stuck.id).status is Status.REQUEUED


@pytest.mark.slow
def test_a_failed_publish_that_cannot_be_put_back_says_it_is_left_requeuing(
        private_redis: RedisHandle, amqp_settings: Settings, amqp_url: str,  # noqa: F811
        broker: Broker):
    client = redis.Redis.from_url(private_redis.url)
    dlq = build_dlq(amqp_settings, client=client, actor="test")
    entry = dlq.store.add(worker_entry(1, trace_key=TRACE))
    proxy = TcpProxy(amqp_port(amqp_url))
    publisher = Publisher(via(amqp_url, proxy.port))
    failed: list[BaseException] = []
    try:
        publisher.publish([probe("customer")])
        broker.take("customer")
        proxy.freeze()  # no confirm will come in time

        def requeue() -> None:
            try:
                ops.requeue_one(on(dlq, publisher), entry.id)
            except BaseException as exc:
                failed.append(exc)

        thread = threading.Thread(target=requeue)
        thread.start()
        wait_for(lambda: dlq.store.get(entry.id).status is Status.REQUEUING, timeout_s=5,
                 what="the claim")
        with out_of_memory(client):
            thread.join(timeout=15)
    finally:
        publisher.close()
        proxy.close()
    [error] = failed
    assert isinstance(error, NotPublished), error
    assert "left requeuing" in error.message and "--reclaim" in error.message
    stuck = dlq.store.get(entry.id)
    assert stuck is not None and stuck.status is Status.REQUEUING
    ops.requeue_one(dlq, entry.id, reclaim=True)
    assert broker.count("pricing") >= 1
