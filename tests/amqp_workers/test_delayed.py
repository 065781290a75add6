"""A retry's countdown waits in RabbitMQ (Celery's native delayed delivery for quorum
queues), never unacked in a worker: nothing held while it waits, and a worker restart
changes nothing about when, or how often, it runs."""

from __future__ import annotations

import time

import pytest

from tests.amqp_workers.conftest import Counts, probe_runs
from tests.plugins.workers import wait_for

pytestmark = pytest.mark.slow


def test_a_countdown_waits_in_rabbitmq_and_runs_once_after_a_worker_restart(
        rabbit, redis_client):
    worker = rabbit.worker(queues="customer")
    rabbit.send("o2c.customer.probe_countdown", {}, trace_key="0065g00000000D1AAA")
    [first] = wait_for(lambda: probe_runs(redis_client, "0065g00000000D1AAA"),
                       what="the first run")
    # The retry (6 s) waits in a delayed-delivery queue: the worker holds nothing.
    # RabbitMQ's counts of a quorum queue lag a little behind.
    wait_for(lambda: rabbit.delayed() == 1 and rabbit.queue("customer") == Counts(0, 0),
             timeout_s=15, interval_s=0.5, what="the retry in RabbitMQ, nothing in the worker")
    worker.kill()
    replacement = rabbit.worker(queues="customer")
    runs = wait_for(lambda: [r for r in probe_runs(redis_client, "0065g00000000D1AAA")
                             if r["retries"] == 1], timeout_s=30, what="the retry's run")
    assert runs[0]["at"] - first["at"] >= 6 - 0.5
    wait_for(lambda: rabbit.delayed() == 0 and rabbit.queue("customer") == Counts(0, 0),
             timeout_s=15, interval_s=0.5, what="the retry acked")
    time.sleep(2)
    assert len(probe_runs(redis_client, "0065g00000000D1AAA")) == 2
    assert "Native delayed delivery will not be available" not in replacement.log_text()


def test_a_sub_second_countdown_is_published_and_runs(rabbit, redis_client, store):
    """The base task's retries can ask for less than a second; Celery's native delayed
    delivery then raised (``countdown must be a positive number``) and never published."""
    rabbit.worker(queues="customer")
    rabbit.send("o2c.customer.probe_step", {"fail": {"customer": 2}},
                trace_key="0065g00000000D2AAA")
    runs = wait_for(lambda: [r for r in probe_runs(redis_client, "0065g00000000D2AAA")
                             if r["retries"] == 2], timeout_s=30, what="two retries run")
    assert len(runs) == 1
    assert store.count() == 0
