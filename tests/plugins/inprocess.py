"""The fleet in the test's own process: both simulators, the receiver served over HTTP, and a
real Celery worker (``celery.contrib.testing.worker``, the solo pool in a thread) consuming
every domain queue on the test Redis. No subprocess: a whole transaction runs in seconds.

Import the fixture where it is used: ``from tests.plugins.inprocess import fleet_in_process``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import redis
import requests
from celery.contrib.testing.worker import start_worker

from config import Settings, get_settings, load_settings
from o2c_workers import app as celery_app
from o2c_workers import keys
from o2c_workers.amqp import topology
from o2c_workers.celery_app import celery_config
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.receiver.app import Receiver
from o2c_workers.receiver.erp_events import SIGNATURE_HEADER, signature
from o2c_workers.runtime import set_runtime
from o2c_workers.sandbox import Sandbox, start_sandbox
from o2c_workers.sandbox.erp import ErpConfig
from o2c_workers.sandbox.http import serve
from o2c_workers.sandbox.salesforce import SalesforceConfig
from o2c_workers.sandbox.world import World
from tests.plugins.workers import wait_for

TOKEN = "in-process-webhook-token"


@dataclass
class FleetInProcess:
    sandbox: Sandbox
    settings: Settings
    receiver_url: str
    redis: redis.Redis

    @property
    def world(self) -> World:
        return self.sandbox.world

    @property
    def dead_letters(self) -> DeadLetterStore:
        return DeadLetterStore(self.redis, prefix=self.settings.key_prefix)

    def ok_opportunity(self, index: int = 0) -> str:
        ok = [o for o in self.world.opportunity_ids if o not in self.world.expected_failures]
        return ok[index]

    def win(self, *ids: str) -> None:
        with self.sandbox.salesforce.session() as http:
            http.post(f"{self.sandbox.sf_url}/_sandbox/opportunities/win",
                      json={"ids": list(ids)}, timeout=30).raise_for_status()

    def sf_records(self, sobject: str) -> dict[str, dict[str, Any]]:
        """Every record of an sObject type in the Salesforce simulator, by id."""
        with self.sandbox.salesforce.session() as http:
            response = http.get(f"{self.sandbox.sf_url}/_sandbox/records/{sobject}", timeout=10)
            response.raise_for_status()
        return {r["Id"]: r for r in response.json()}

    def sf_record(self, sobject: str, record_id: str) -> dict[str, Any]:
        return self.sf_records(sobject)[record_id]

    def erp(self, method: str, path: str, **kwargs: Any) -> Any:
        cfg = self.sandbox.erp_config
        response = requests.request(
            method, f"{self.sandbox.erp_url}/api/resource/{path}", timeout=10,
            headers={"Authorization": f"token {cfg.api_key}:{cfg.api_secret}"}, **kwargs)
        response.raise_for_status()
        return response.json(parse_float=Decimal)["data"]

    def documents(self, doctype: str) -> list[dict[str, Any]]:
        """Every document of a DocType, read past the ERP's faults and limits."""
        response = requests.get(f"{self.sandbox.erp_url}/_sandbox/documents/{doctype}",
                                timeout=10)
        response.raise_for_status()
        return list(response.json(parse_float=Decimal)["data"])

    def post_erp_event(self, event: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Send the receiver an ERP webhook for ``doc``, signed as the ERP signs it."""
        body = json.dumps({"event": event, "doctype": doc["doctype"], "name": doc["name"],
                           "modified": doc.get("modified"), "doc": doc}, default=str).encode()
        secret = self.sandbox.erp_config.webhook_secret
        response = requests.post(f"{self.receiver_url}/erp/events", data=body, timeout=10,
                                 headers={"Content-Type": "application/json",
                                          SIGNATURE_HEADER: signature(secret, body)})
        response.raise_for_status()
        return dict(response.json())


def no_redis_queue_lists(client: redis.Redis) -> None:
    """On a RabbitMQ fleet every task message goes to RabbitMQ: a queue's list on the state
    Redis would be a message no worker reads."""
    found = {queue: client.llen(queue) for queue in topology.QUEUE_NAMES if client.exists(queue)}
    assert not found, f"task messages pushed onto the state Redis: {found}"


def _use_test_broker(settings: Settings) -> None:
    """Point the fleet's app at the test broker, dropping pools made for another URL and
    the queues and routes read from another broker's settings (``app.amqp`` caches them)."""
    celery_app.conf.update(celery_config(settings))
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)


@pytest.fixture
def fleet_in_process(redis_url: str, redis_client: redis.Redis, world: World,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FleetInProcess]]:
    """``fleet_in_process(erp=..., sf=..., webhooks=True, broker_url=None)``: everything up,
    the worker ready; ``broker_url`` (``amqp://``) puts the worker on RabbitMQ.

    ``webhooks=False`` keeps the ERP's webhooks in its record only (a test then sends
    them itself with ``post_erp_event``).
    """
    stack = ExitStack()

    def start(*, erp: dict[str, Any] | None = None, sf: dict[str, Any] | None = None,
              webhooks: bool = True, broker_url: str | None = None) -> FleetInProcess:
        erp_config = ErpConfig(**{"invoice_delay_s": 0.2, "payment_delay_s": 0.2, **(erp or {})})
        receiver_settings = load_settings(
            redis_url=redis_url, webhook_token=TOKEN, salesforce_org_ids=[world.org_id],
            erp_webhook_secret=erp_config.webhook_secret,
            **({"broker_url": broker_url} if broker_url else {}))
        receiver = Receiver(receiver_settings, redis_client=redis_client, celery_app=celery_app)
        server = serve(receiver, port=0, name="receiver")
        stack.callback(server.stop)
        if webhooks:
            erp_config.webhook_url = f"{server.url}/erp/events"
        sandbox = start_sandbox(world=world, erp_port=0, sf_port=0, erp_config=erp_config,
                                sf_config=SalesforceConfig(
                                    org_id=world.org_id, retry_base_s=0.5, retry_cap_s=2,
                                    outbound_url=f"{server.url}/salesforce/outbound"
                                                 f"?token={TOKEN}", **(sf or {})))
        stack.callback(sandbox.stop)
        env = {**sandbox.env(), "O2C_REDIS_URL": redis_url,
               **({"O2C_BROKER_URL": broker_url} if broker_url else {})}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        settings = get_settings()
        _use_test_broker(settings)
        if broker_url:
            # On RabbitMQ nothing may ever be pushed onto a Redis list named like a queue.
            stack.callback(no_redis_queue_lists, redis_client)
        # The worker sets up the process's logging as in production; pytest's capture comes
        # back right after, so tests can read the log records.
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        stack.enter_context(start_worker(celery_app, pool="solo", perform_ping_check=False,
                                         shutdown_timeout=30))
        root.handlers[:] = handlers
        root.setLevel(level)
        if settings.broker_kind == "redis":
            # On RabbitMQ the worker consumes once it is started.
            wait_for(lambda: redis_client.zcard(keys.delivery_consumers(settings.key_prefix)),
                     timeout_s=10, what="the worker to consume")
        return FleetInProcess(sandbox, settings, server.url, redis_client)

    yield start
    stack.close()
    # The next test configures the shared app afresh: nothing of this broker stays cached.
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)
    set_runtime(None)
    get_settings.cache_clear()
