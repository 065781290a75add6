"""The catch-up sweep on RabbitMQ (built as the beat's task builds it): each page's chains
are published and confirmed, then their marks and the watermark written; a publish that
fails moves nothing, and the next sweep starts them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests

from o2c_workers import app as celery_app
from o2c_workers.erp import build_adapter
from o2c_workers.infrastructure import BrokerUnavailable
from o2c_workers.salesforce import build_salesforce
from o2c_workers.sandbox import Sandbox
from o2c_workers.sweeps import state
from o2c_workers.sweeps.erp_feed import ErpFeed
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


def test_the_erp_feed_publishes_its_tasks_then_marks_them(sandbox: Sandbox, redis_url: str,
                                                          redis_client: redis.Redis,
                                                          amqp_url: str, broker: Broker):
    settings = sandbox_settings(sandbox, redis_url, broker_url=amqp_url)
    cfg = sandbox.erp_config
    auth = {"Authorization": f"token {cfg.api_key}:{cfg.api_secret}"}

    def erp(path: str, doc: dict[str, Any]) -> dict[str, Any]:
        answer = requests.post(f"{sandbox.erp_url}/api/resource/{path}", json=doc,
                               headers=auth, timeout=10)
        answer.raise_for_status()
        return dict(answer.json()["data"])

    customer = erp("Customer", {"customer_name": "Walk-in Trade Counter Ltd",
                                "country": "United States", "default_currency": "USD"})
    invoice = erp("Sales Invoice", {"customer": customer["name"], "currency": "USD",
                                    "docstatus": 1, "items": [
                                        {"item_code": sandbox.world.erp.items[0].code,
                                         "qty": 2}]})
    adapter = build_adapter(settings, redis_client)
    try:
        feed = ErpFeed.build(settings, redis_client=redis_client, erp=adapter,
                             celery_app=celery_app)
        first = feed.run()
        assert first.counts.get("started") == 1
        [message] = broker.take("invoice")
        assert message["args"][0]["name"] == invoice["name"]
        again = feed.run(since=time.time() - 3600)
        assert again.counts.get("started", 0) == 0
    finally:
        adapter.close()
    assert broker.count("invoice") == 0
    assert queue_lists(redis_client) == 0
