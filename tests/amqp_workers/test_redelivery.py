"""A SIGKILLed worker on RabbitMQ: its unacked messages are back on their queue at once
(the connection closes with the process), and run again to the end."""

from __future__ import annotations

import time

import pytest

from tests.amqp_workers.conftest import Counts, probe_runs
from tests.plugins.workers import wait_for

pytestmark = pytest.mark.slow


def test_a_sigkilled_worker_hands_its_messages_back_at_once(rabbit, redis_client, store):
    worker = rabbit.worker(queues="order")
    rabbit.send("o2c.order.probe_step", {"sleep": {"order": 60}},
                trace_key="0065g00000000R1AAA")
    wait_for(lambda: probe_runs(redis_client, "0065g00000000R1AAA"), what="the step running")
    # RabbitMQ's counts of a quorum queue lag a little behind.
    wait_for(lambda: rabbit.queue("order") == Counts(ready=0, unacked=1), timeout_s=15,
             interval_s=0.5, what="the message held by the worker")
    worker.kill()
    killed_at = time.monotonic()
    wait_for(lambda: rabbit.queue("order") == Counts(ready=1, unacked=0), timeout_s=10,
             interval_s=0.2, what="the message back on its queue")
    assert time.monotonic() - killed_at < 8  # no visibility timeout to wait out
    rabbit.worker(queues="order")
    wait_for(lambda: rabbit.queue("order") == Counts(0, 0) and len(
        probe_runs(redis_client, "0065g00000000R1AAA")) == 2, timeout_s=30,
        what="the step run again and acked")
    assert store.count() == 0
