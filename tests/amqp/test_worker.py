"""What the publisher publishes, a real Celery worker consuming the quorum queues runs: a
probe step, and a chain whose next steps Celery itself publishes to RabbitMQ."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest
import redis
import requests

from config import load_settings
from o2c_workers import app as celery_app
from o2c_workers.amqp.publish import Publisher
from o2c_workers.enqueue import MessageFactory
from o2c_workers.receiver.app import Receiver
from o2c_workers.sandbox import start_sandbox
from o2c_workers.sandbox.erp import ErpConfig
from o2c_workers.sandbox.http import serve
from o2c_workers.sandbox.salesforce import SalesforceConfig
from o2c_workers.sandbox.world import World
from tests.amqp.conftest import TOKEN, Broker, queue_lists, running_worker
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


@pytest.mark.slow
def test_a_won_opportunity_is_booked_through_rabbitmq(world: World, redis_url: str,
                                                      redis_client: redis.Redis,
                                                      amqp_url: str, broker: Broker,
                                                      monkeypatch: pytest.MonkeyPatch):
    """Salesforce's outbound message, the receiver publishing the chain's first step, the
    worker running the real O2C chain (whose next steps Celery publishes) against the
    sandbox: one ERP order, its number written back."""
    erp_config = ErpConfig(invoice_delay_s=0.2, payment_delay_s=0.2)
    settings = load_settings(redis_url=redis_url, broker_url=amqp_url, webhook_token=TOKEN,
                             salesforce_org_ids=[world.org_id],
                             erp_webhook_secret=erp_config.webhook_secret)
    with ExitStack() as stack:
        server = serve(Receiver(settings, redis_client=redis_client, celery_app=celery_app),
                       port=0, name="receiver")
        stack.callback(server.stop)
        erp_config.webhook_url = f"{server.url}/erp/events"
        sandbox = start_sandbox(world=world, erp_port=0, sf_port=0, erp_config=erp_config,
                                sf_config=SalesforceConfig(
                                    org_id=world.org_id, retry_base_s=0.5, retry_cap_s=2,
                                    outbound_url=f"{server.url}/salesforce/outbound"
                                                 f"?token={TOKEN}"))
        stack.callback(sandbox.stop)
        stack.enter_context(running_worker(monkeypatch, {
            **sandbox.env(), "O2C_REDIS_URL": redis_url, "O2C_BROKER_URL": amqp_url}))
        won = next(o for o in world.opportunity_ids if o not in world.expected_failures)
        sandbox.salesforce.simulator.win([won])
        number = wait_for(lambda: sandbox.salesforce.simulator.store.get(
            "Opportunity", won).get("ERP_Order_Number__c"), timeout_s=60,
            what="the ERP order number written back")
        orders = requests.get(f"{sandbox.erp_url}/_sandbox/documents/Sales Order",
                              timeout=10).json()["data"]
        assert [o["name"] for o in orders if o.get("po_no") == won] == [number]
        wait_for(lambda: not any(broker.counts().values()), timeout_s=30,
                 what="every message acked")
    assert queue_lists(redis_client) == 0
