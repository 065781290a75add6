"""What RabbitMQ dead-letters to ``o2c.dead`` is filed as a dead letter with its context,
once, and acked only after; a poison message is filed once, by whichever count sees it
first (``o2c_workers.amqp.dead``)."""

from __future__ import annotations

import time

import pytest
from kombu.connection import Connection

from o2c_workers import keys
from o2c_workers.amqp import topology
from o2c_workers.dlq import DeadLetterStore
from tests.amqp_workers.conftest import Counts, probe_runs
from tests.plugins.workers import wait_for
from tests.restartable import restartable_redis  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

KILL = "o2c.order.probe_kill"


def drained(rabbit, *queues: str) -> bool:
    counts = rabbit.counts()
    return all(counts.get(q, Counts(0, 0)) == Counts(0, 0) for q in queues)


def test_a_poison_message_is_filed_once_by_the_run_count_and_never_dead_lettered_by_rabbitmq(
        rabbit, redis_client, store):
    """O2C_MAX_WORKER_LOST (3) is below the delivery limit (20): the fleet's own count files
    it ``worker_lost`` and acks it, so RabbitMQ has nothing to dead-letter."""
    rabbit.worker(queues="order")
    task_id = rabbit.send(KILL, {}, trace_key="0065g00000000P1AAA")
    [entry_id] = wait_for(lambda: store.ids(trace_key="0065g00000000P1AAA"), timeout_s=60,
                          what="the poison message filed")
    entry = store.get(entry_id)
    assert (entry.category, entry.source, entry.attempts) == ("worker_lost", "worker", 3)
    wait_for(lambda: drained(rabbit, "order", topology.DEAD_QUEUE), timeout_s=20,
             what="the message acked")
    time.sleep(2)
    assert store.ids(trace_key="0065g00000000P1AAA") == [entry_id]
    assert len(probe_runs(redis_client, "0065g00000000P1AAA")) == 3
    assert not redis_client.exists(keys.worker_lost("o2c", task_id))


def test_past_the_delivery_limit_rabbitmq_dead_letters_it_and_the_fleet_files_it(
        rabbit, redis_client, store):
    """With the run count set above the delivery limit (the subject here), RabbitMQ's own
    limit ends the loop: dead-lettered to o2c.dead, filed ``worker_lost`` with the exit the
    count noted and its delivery count, then acked."""
    rabbit.worker(queues="order", env={"O2C_MAX_WORKER_LOST": "50"})
    task_id = rabbit.send(KILL, {"step": "kill"}, trace_key="0065g00000000P2AAA")
    [entry_id] = wait_for(lambda: store.ids(trace_key="0065g00000000P2AAA"), timeout_s=180,
                          interval_s=0.5, what="the message dead-lettered and filed")
    entry = store.get(entry_id)
    assert (entry.category, entry.error_class, entry.source) == (
        "worker_lost", "WorkerLost", "broker")
    assert entry.task == KILL and entry.domain == "order"
    assert entry.args == [{"trace_key": "0065g00000000P2AAA", "step": "kill"}]
    assert "delivery_limit" in entry.message and "signal 9 (SIGKILL)" in entry.message
    runs = len(probe_runs(redis_client, "0065g00000000P2AAA"))
    assert runs > topology.DELIVERY_LIMIT
    assert entry.attempts >= topology.DELIVERY_LIMIT
    wait_for(lambda: drained(rabbit, "order", topology.DEAD_QUEUE), timeout_s=20,
             what="o2c.dead acked")
    assert not redis_client.exists(keys.worker_lost("o2c", task_id))
    assert redis_client.exists(keys.timeline("o2c", "0065g00000000P2AAA"))
    assert store.ids(trace_key="0065g00000000P2AAA") == [entry_id]


def test_a_message_celery_refuses_is_filed_with_its_arguments(rabbit, store):
    """An unregistered task (a worker of another release) is rejected by Celery without
    requeue; RabbitMQ dead-letters it and the fleet files it."""
    rabbit.worker(queues="order")
    rabbit.send("o2c.order.no_such_step", {"n": 1}, trace_key="0065g00000000P3AAA")
    [entry_id] = wait_for(lambda: store.ids(trace_key="0065g00000000P3AAA"), timeout_s=30,
                          what="the refused message filed")
    entry = store.get(entry_id)
    assert (entry.category, entry.error_class, entry.task) == (
        "unexpected", "Rejected", "o2c.order.no_such_step")
    assert entry.args == [{"trace_key": "0065g00000000P3AAA", "n": 1}]
    assert "rejected" in entry.message
    wait_for(lambda: drained(rabbit, "order", topology.DEAD_QUEUE), timeout_s=20,
             what="o2c.dead acked")


def test_a_dead_letter_redis_refuses_stays_in_rabbitmq_until_it_is_filed(
        rabbit, restartable_redis):  # noqa: F811
    """No ack before the dead letter is written: with the state Redis refusing writes the
    message stays (unacked) on o2c.dead, and is filed once Redis takes writes again."""
    state = restartable_redis.client
    store = DeadLetterStore(state, prefix="o2c", retention_s=86400)
    rabbit.worker(queues="order", state_url=restartable_redis.url)
    state.config_set("min-replicas-to-write", 1)
    try:
        rabbit.send("o2c.order.no_such_step", {}, trace_key="0065g00000000P4AAA")
        wait_for(lambda: rabbit.queue(topology.DEAD_QUEUE) == Counts(ready=0, unacked=1),
                 timeout_s=30, interval_s=0.5, what="the dead letter held, not acked")
        time.sleep(6)
        assert rabbit.queue(topology.DEAD_QUEUE) == Counts(ready=0, unacked=1)
        assert store.count() == 0
    finally:
        state.config_set("min-replicas-to-write", 0)
    wait_for(lambda: store.ids(trace_key="0065g00000000P4AAA"), timeout_s=30,
             what="the dead letter filed once Redis takes writes")
    wait_for(lambda: drained(rabbit, topology.DEAD_QUEUE), timeout_s=20, what="acked")
    assert len(store.ids(trace_key="0065g00000000P4AAA")) == 1


def test_an_expired_sweep_is_dropped_not_filed(rabbit, store):
    """A sweep still queued when the next is due is dropped (``expires``): on RabbitMQ it
    expires into o2c.dead, where the fleet drops it too."""
    rabbit.worker(queues="order")
    rabbit.send("o2c.sweep.run", {}, trace_key="sweep", expires=1)
    wait_for(lambda: drained(rabbit, "sweep", topology.DEAD_QUEUE), timeout_s=30,
             interval_s=0.5, what="the sweep expired and dropped")
    assert store.count() == 0


def test_a_dead_message_that_is_not_json_is_filed_as_text(rabbit, store):
    rabbit.worker(queues="order")
    with Connection(rabbit.url) as conn:
        conn.Producer().publish(b"\xffnot json", exchange=topology.DEAD_EXCHANGE, routing_key="",
                                content_type="text/plain", content_encoding="binary",
                                headers={"task": "o2c.order.submit_order", "id": "raw-1"})
    [entry_id] = wait_for(lambda: store.ids(trace_key="task:raw-1"), timeout_s=30,
                          what="the text filed")
    entry = store.get(entry_id)
    assert entry.category == "unexpected" and "not json" in str(entry.payload)
    wait_for(lambda: drained(rabbit, topology.DEAD_QUEUE), timeout_s=20, what="acked")
