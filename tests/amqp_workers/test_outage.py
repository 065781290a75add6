"""A Redis (state) restart of a minute does not burn RabbitMQ's delivery limit: steps hold
their messages while Redis refuses, hand each back once, and nothing is dead-lettered
(``o2c_workers.outage``)."""

from __future__ import annotations

import time

import pytest

from o2c_workers.amqp import topology
from o2c_workers.dlq import DeadLetterStore
from tests.amqp_workers.conftest import Counts
from tests.plugins.workers import wait_for
from tests.probe_tasks import PROBE_KEY
from tests.restartable import restartable_redis  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

#: As long as a Redis restart with a large AOF, or a managed Redis's failover, may take.
OUTAGE_S = 60
KEYS = [f"0065g00000000O{n}AAA" for n in range(1, 7)]


def finished(client) -> set[str]:
    """Trace keys whose step ran past its Redis writes (a run after the restart)."""
    import json

    return {call["trace_key"] for call in map(json.loads, client.lrange(PROBE_KEY, 0, -1))}


def test_a_redis_restart_of_a_minute_dead_letters_nothing(rabbit, restartable_redis):  # noqa: F811
    worker = rabbit.worker(queues="order", concurrency=2, state_url=restartable_redis.url)
    for key in KEYS:
        rabbit.send("o2c.order.probe_step", {"sleep": {"order": 3}}, trace_key=key)
    wait_for(lambda: finished(restartable_redis.client), what="the first steps running")
    restartable_redis.stop()
    time.sleep(OUTAGE_S)
    client = restartable_redis.start()
    store = DeadLetterStore(client, prefix="o2c", retention_s=86400)
    wait_for(lambda: finished(client) >= set(KEYS), timeout_s=120, interval_s=0.5,
             what="every step run once Redis is back")
    wait_for(lambda: rabbit.queue("order") == Counts(0, 0), timeout_s=30, interval_s=0.5,
             what="every message acked")
    time.sleep(3)
    assert store.count() == 0, [(e.category, e.message) for e in store.many(store.ids())]
    assert rabbit.queue(topology.DEAD_QUEUE) == Counts(0, 0)
    assert "holding the message" in worker.log_text()
