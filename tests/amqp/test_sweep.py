"""The catch-up sweep on RabbitMQ (built as the beat's task builds it): each page's chains
are published and confirmed, then their marks and the watermark written; a publish that
fails moves nothing, and the next sweep starts them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from o2c_workers import app as celery_app
from o2c_workers.infrastructure import BrokerUnavailable
from o2c_workers.salesforce import build_salesforce
from o2c_workers.sandbox import Sandbox
from o2c_workers.sweeps import state
from o2c_workers.sweeps.run import run_sweeps
from o2c_workers.sweeps.sweeper import Sweeper
from tests.amqp.conftest import Broker, amqp_port, queue_lists, via
from tests.proxy import TcpProxy
from tests.sweeps.conftest import sandbox_settings


@pytest.fixture
def sweeper_on(sandbox: Sandbox, redis_url: str, redis_client: redis.Redis
               ) -> Iterator[Any]:
    """``sweeper_on(broker_url)``: the fleet's sweeper of the sandbox's org on that broker."""
    clients = []

    def make(broker_url: str) -> Sweeper:
        settings = sandbox_settings(sandbox, redis_url, broker_url=broker_url)
        salesforce = build_salesforce(settings)
        clients.append(salesforce)
        return Sweeper.build(settings, redis_client=redis_client, salesforce=salesforce,
                             celery_app=celery_app)

    yield make
    for client in clients:
        client.close()


def unwon(sandbox: Sandbox, count: int) -> list[str]:
    return [o["Id"] for o in sandbox.world.of("Opportunity")
            if o["StageName"] != "Closed Won"][:count]


def test_a_sweep_publishes_its_chains_then_marks_them(sandbox: Sandbox, sweeper_on: Any,
                                                      broker: Broker, amqp_url: str,
                                                      redis_client: redis.Redis):
    proxy = TcpProxy(amqp_port(amqp_url))
    sweeper = sweeper_on(via(amqp_url, proxy.port))
    opps = unwon(sandbox, 3)
    sandbox.salesforce.simulator.win(opps)
    try:
        proxy.cut()
        with pytest.raises(BrokerUnavailable):
            run_sweeps(sweeper)
        # Nothing confirmed, nothing marked: the watermark has not moved.
        assert state.watermark(redis_client, "o2c", "opportunities") is None
        assert not any(broker.counts().values())
        proxy.restore()
        result = run_sweeps(sweeper)
    finally:
        proxy.close()
    [found] = [s for s in result.sweeps if s.sweep == "opportunities"]
    assert {f.trace_key: f.outcome for f in found.found} == dict.fromkeys(opps, "started")
    assert state.watermark(redis_client, "o2c", "opportunities") is not None
    messages = broker.take("customer")
    assert sorted(m["headers"]["trace_key"] for m in messages) == sorted(opps)
    assert {m["headers"]["task"] for m in messages} == {"o2c.customer.ensure_customer"}
    again = sweeper_on(amqp_url)
    run_sweeps(again)  # in hand already: nothing is published again
    assert broker.count("customer") == 0
    assert queue_lists(redis_client) == 0
