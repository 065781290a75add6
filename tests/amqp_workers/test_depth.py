"""Queue depth on RabbitMQ: a passive declare's ready count, and the retries waiting in the
delayed-delivery queues (what ``make demo``'s progress and the status reports read)."""

from __future__ import annotations

import pytest
from kombu.connection import Connection
from kombu.transport.native_delayed_delivery import (
    declare_native_delayed_delivery_exchanges_and_queues,
)

from o2c_workers.amqp.consumer import declare_topology
from o2c_workers.amqp.depth import depth
from o2c_workers.celery_app import DOMAINS
from o2c_workers.demo.progress import snapshot
from tests.plugins.workers import wait_for

pytestmark = pytest.mark.slow


def test_ready_and_delayed_messages_are_counted(rabbit, redis_client):
    with Connection(rabbit.url) as conn:
        declare_topology(conn)
        declare_native_delayed_delivery_exchanges_and_queues(conn, "quorum")
    assert depth(rabbit.url, [*DOMAINS, "no-such-queue"]).total == 0
    rabbit.send("o2c.order.probe_step", {}, trace_key="0065g00000000Q1AAA")
    rabbit.send("o2c.pricing.probe_step", {}, trace_key="0065g00000000Q2AAA", countdown=600)
    found = wait_for(lambda: (d := depth(rabbit.url, DOMAINS)).total == 2 and d, timeout_s=10,
                     what="both messages counted")
    assert found.ready["order"] == 1 and found.delayed == 1
    assert snapshot(redis_client, "o2c", amqp_url=rabbit.url).queued == 2
