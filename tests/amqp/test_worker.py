"""What the publisher publishes, a real Celery worker consuming the quorum queues runs: a
probe step, and a chain whose next steps Celery itself publishes to RabbitMQ."""

from __future__ import annotations

import json

import redis

from o2c_workers import app as celery_app
from o2c_workers.amqp.publish import Publisher
from o2c_workers.enqueue import MessageFactory
from tests.amqp.conftest import Broker, queue_lists
from tests.plugins.workers import wait_for
from tests.probe_tasks import PROBE_KEY


def runs(client: redis.Redis, trace_key: str) -> list[str]:
    return [c["task"] for c in (json.loads(raw) for raw in client.lrange(PROBE_KEY, 0, -1))
            if c["trace_key"] == trace_key]


def test_a_worker_runs_what_the_publisher_published(amqp_worker, redis_client, broker: Broker,
                                                    publisher: Publisher):
    factory = MessageFactory(celery_app)
    step = factory.build("o2c.order.probe_step", args=[{"trace_key": "0065g00000000P1AAA"}],
                         trace_key="0065g00000000P1AAA")
    chain = factory.build("o2c.customer.probe_step",
                          args=[{"trace_key": "0065g00000000P2AAA"}],
                          trace_key="0065g00000000P2AAA",
                          then=["o2c.pricing.probe_step", "o2c.order.probe_step"])
    publisher.publish([step, chain])
    wait_for(lambda: runs(redis_client, "0065g00000000P1AAA")
             and len(runs(redis_client, "0065g00000000P2AAA")) == 3,
             timeout_s=30, what="the step and the whole chain to run")
    assert runs(redis_client, "0065g00000000P2AAA") == [
        "o2c.customer.probe_step", "o2c.pricing.probe_step", "o2c.order.probe_step"]
    wait_for(lambda: not any(broker.counts().values()), timeout_s=10,
             what="every message to be acked")
    assert queue_lists(redis_client) == 0
