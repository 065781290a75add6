"""The whole fleet against the sandbox: simulators, the receiver under gunicorn, and real
Celery workers as subprocesses. Assertions go through the simulators' own APIs.

A test marked ``@pytest.mark.brokers("redis", "amqp")`` runs once per broker (unmarked: on
Redis only). On RabbitMQ each run has a vhost of its own: the receiver, ``o2c dlq requeue``
and the workers publish to it, and no queue's list may appear on the state Redis."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from o2c_workers.celery_app import DOMAINS
from o2c_workers.delivery.census import census
from o2c_workers.dev.fleet import Fleet, ManagedProcess
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.sandbox import Sandbox, start_sandbox
from o2c_workers.sandbox.erp import ErpConfig
from o2c_workers.sandbox.salesforce import SalesforceConfig
from o2c_workers.sandbox.world import World, generate_world
from o2c_workers.writeback import Outbox
from tests.plugins.inprocess import (
    fleet_in_process,  # noqa: F401 - the in-process fleet
    no_redis_queue_lists,
)
from tests.plugins.workers import wait_for
from tests.rabbitmq import NoRabbitMQ, VirtualHost, ctl, virtual_host

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-webhook-token"

#: The fleet runs on the shipped defaults (retries, countdowns, timeouts, redelivery); only
#: what a test is about is set by that test.
FLEET_ENV = {"O2C_LOG_JSON": "true", "PYTHONPATH": str(ROOT)}
BROKERS = ("redis", "amqp")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``broker``: the brokers of the test's ``brokers`` marker, else Redis alone."""
    if "broker" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("brokers")
        metafunc.parametrize("broker", marker.args if marker else ("redis",), indirect=True)


@dataclass(frozen=True)
class Broker:
    """Which broker a fleet runs on; on RabbitMQ, the vhost of the test's own."""

    kind: str
    vhost: VirtualHost | None = None

    @property
    def url(self) -> str | None:
        return self.vhost.url if self.vhost else None

    def counts(self, queues: list[str]) -> tuple[int, int]:
        """Ready and unacked messages of ``queues`` plus the retries waiting in RabbitMQ's
        delayed-delivery queues (``rabbitmqctl``): (queued, held)."""
        assert self.vhost is not None
        queued = held = 0
        for line in ctl("list_queues", "-p", self.vhost.name, "--no-table-headers", "name",
                        "messages_ready", "messages_unacknowledged").splitlines():
            parts = line.split()
            if len(parts) == 3 and (parts[0] in queues or parts[0].startswith("celery_delayed_")):
                queued, held = queued + int(parts[1]), held + int(parts[2])
        return queued, held


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    if request.param == "redis":
        yield Broker("redis")
        return
    made = virtual_host()
    try:
        vhost = made.__enter__()
    except NoRabbitMQ as exc:
        pytest.skip(f"RabbitMQ is needed: {exc}")
    try:
        yield Broker("amqp", vhost)
    finally:
        made.__exit__(None, None, None)


@dataclass
class O2C:
    """One running fleet on one sandbox."""

    sandbox: Sandbox
    fleet: Fleet
    redis: redis.Redis
    receiver_url: str
    sf: requests.Session
    workers: list[ManagedProcess] = field(default_factory=list)
    broker: Broker = field(default_factory=lambda: Broker("redis"))

    @property
    def world(self):  # type: ignore[no-untyped-def]
        return self.sandbox.world

    def start_order_worker(self) -> ManagedProcess:
        worker = self.fleet.start_worker("order", concurrency=2,
                                         name=f"order{len(self.workers)}")
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def ok_opportunities(self) -> list[str]:
        return [o for o in self.world.opportunity_ids if o not in self.world.expected_failures]

    def win(self, ids: list[str] | None = None) -> None:
        body = {"ids": ids if ids is not None else "all"}
        self.sf.post(f"{self.sandbox.sf_url}/_sandbox/opportunities/win", json=body,
                     timeout=30).raise_for_status()

    def erp_stats(self) -> dict[str, Any]:
        return requests.get(f"{self.sandbox.erp_url}/_sandbox/stats", timeout=10).json()

    def erp_faults(self, **faults: Any) -> None:
        requests.post(f"{self.sandbox.erp_url}/_sandbox/faults", json=faults,
                      timeout=10).raise_for_status()

    def _erp_get(self, path: str, params: dict[str, str] | None = None) -> Any:
        cfg = self.sandbox.erp_config
        response = requests.get(
            f"{self.sandbox.erp_url}/api/resource/{path}", params=params, timeout=10,
            headers={"Authorization": f"token {cfg.api_key}:{cfg.api_secret}"})
        response.raise_for_status()
        return response.json(parse_float=Decimal)["data"]

    def erp_docs(self, doctype: str, **filters: str) -> list[dict[str, Any]]:
        """Every document of a DocType (with child tables), through the ERP's REST API."""
        params = {"limit_page_length": "0"}
        if filters:
            params["filters"] = json.dumps([[k, "=", v] for k, v in filters.items()])
        return [self._erp_get(f"{doctype}/{row['name']}")
                for row in self._erp_get(doctype, params)]

    def sf_records(self, sobject: str) -> dict[str, dict[str, Any]]:
        response = self.sf.get(f"{self.sandbox.sf_url}/_sandbox/records/{sobject}", timeout=10)
        response.raise_for_status()
        return {r["Id"]: r for r in response.json(parse_float=Decimal)}

    def dead_letters(self) -> DeadLetterStore:
        return DeadLetterStore(self.redis, prefix="o2c")

    def wait_written_back(self, ids: list[str], *, timeout_s: float = 60) -> None:
        def done() -> bool:
            records = self.sf_records("Opportunity")
            return all(records[i].get("ERP_Order_Number__c") for i in ids)
        wait_for(done, timeout_s=timeout_s, interval_s=0.3, what="every order written back")

    def held_and_queued(self, queues: list[str]) -> tuple[int, int]:
        """Messages of ``queues`` waiting (queued or delayed) and held by a worker."""
        if self.broker.kind == "amqp":
            return self.broker.counts(queues)
        found = census(self.redis, "o2c", queues)
        return found.queued + found.delayed, found.held

    def settled(self) -> bool:
        """Nothing left to happen: no ERP invoice, payment or webhook to come, no message
        queued or running, no status write-back waiting in the outbox."""
        stats = self.erp_stats()
        queued = sum(self.held_and_queued(list(DOMAINS)))
        waiting = Outbox(self.redis, prefix="o2c", flush_s=0).waiting()
        return (stats["lifecycle"]["scheduled"] == 0 and stats["webhooks"]["pending"] == 0
                and queued == 0 and waiting == 0)

    def sf_calls(self) -> dict[tuple[str, str], int]:
        """REST calls the Salesforce simulator counted, by method and resource."""
        stats = self.sf.get(f"{self.sandbox.sf_url}/_sandbox/stats", timeout=10).json()
        return {(c["method"], c["resource"]): c["count"] for c in stats["api"]["calls"]}

    def wait_settled(self, *, timeout_s: float = 60) -> None:
        """Wait until ``settled`` holds twice, a second apart."""
        def twice() -> bool:
            if not self.settled():
                return False
            time.sleep(1.0)
            return self.settled()
        wait_for(twice, timeout_s=timeout_s, interval_s=0.3, what="the process to settle")

    def sales_orders_by_opportunity(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for order in self.erp_docs("Sales Order"):
            out.setdefault(order["salesforce_id"], []).append(order)
        return out


def start_o2c(redis_url: str, redis_client: redis.Redis, log_dir: Path, *,
              world_args: dict[str, Any] | None = None, erp: dict[str, Any] | None = None,
              sf: dict[str, Any] | None = None, env: dict[str, str] | None = None,
              order_worker: bool = True, world: World | None = None,
              broker: Broker | None = None) -> O2C:
    """A fleet on a fresh sandbox: the receiver, a front worker and (unless told) an order
    worker, on ``broker`` (Redis by default). The caller stops ``o2c.fleet`` and
    ``o2c.sandbox``."""
    broker = broker or Broker("redis")
    port = free_port()
    receiver_url = f"http://127.0.0.1:{port}"
    world = world or generate_world(**{
        "accounts": 10, "opportunities": 12, "credit_hold": 0,
        "missing_tax": 0, "unknown_item": 0, **(world_args or {})})
    sandbox = start_sandbox(
        world=world, erp_port=0, sf_port=0,
        erp_config=ErpConfig(webhook_url=f"{receiver_url}/erp/events",
                             **{"invoice_delay_s": 0.3, "payment_delay_s": 0.3, **(erp or {})}),
        sf_config=SalesforceConfig(
            org_id=world.org_id, retry_base_s=0.5, retry_cap_s=2,
            outbound_url=f"{receiver_url}/salesforce/outbound?token={TOKEN}",
            **(sf or {})))
    full_env = {**os.environ, **sandbox.env(), **FLEET_ENV, "O2C_REDIS_URL": redis_url,
                "O2C_WEBHOOK_TOKEN": TOKEN,
                **({"O2C_BROKER_URL": broker.url} if broker.url else {}), **(env or {})}
    fleet = Fleet(env=full_env, log_dir=log_dir)
    try:
        fleet.start_receiver(port)
        o2c = O2C(sandbox, fleet, redis_client, receiver_url, sandbox.salesforce.session(),
                  broker=broker)
        o2c.workers.append(fleet.start_worker("customer,pricing,invoice,payment",
                                              concurrency=3, name="front"))
        if order_worker:
            o2c.start_order_worker()
        o2c.workers[0].wait_ready()
    except BaseException:
        fleet.stop()
        sandbox.stop()
        raise
    return o2c


@pytest.fixture
def o2c_factory(redis_url: str, redis_client: redis.Redis, tmp_path: Path,
                request: pytest.FixtureRequest) -> Iterator[Callable[..., O2C]]:
    """Start a fleet: ``o2c_factory(world_args=..., erp=..., sf=..., env=...)``, on the
    test's ``broker`` when it takes one."""
    started: list[O2C] = []
    on: Broker = request.getfixturevalue("broker") if "broker" in request.fixturenames \
        else Broker("redis")

    def start(**options: Any) -> O2C:
        o2c = start_o2c(redis_url, redis_client, tmp_path / f"logs-{len(started)}",
                        broker=on, **options)
        started.append(o2c)
        return o2c

    yield start
    for o2c in started:
        o2c.fleet.stop()
        o2c.sandbox.stop()
    if on.kind == "amqp":
        no_redis_queue_lists(redis_client)
