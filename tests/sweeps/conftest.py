"""The sweeps in-process against the sandbox's simulators over HTTP, on the test Redis."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from config import Settings, load_settings
from o2c_workers import app as celery_app
from o2c_workers.enqueue import MessageFactory
from o2c_workers.salesforce import SalesforceClient, build_salesforce
from o2c_workers.sandbox import Sandbox
from o2c_workers.sandbox.salesforce.soap import Notification, build_message, snapshot
from o2c_workers.sweeps.sweeper import Sweeper
from tests.helpers import queued


def sandbox_settings(sandbox: Sandbox, redis_url: str, **overrides: Any) -> Settings:
    env = {k.removeprefix("O2C_").lower(): v for k, v in sandbox.env().items()
           if k.startswith("O2C_")}
    return load_settings(**{**env, "redis_url": redis_url, **overrides})


@dataclass
class Sweeping:
    sandbox: Sandbox
    settings: Settings
    redis: redis.Redis
    salesforce: SalesforceClient
    sweeper: Sweeper

    def win(self, ids: list[str]) -> None:
        self.sandbox.salesforce.simulator.win(ids)

    def queued(self, queue: str = "customer") -> list[str]:
        """Trace keys of the task messages waiting on ``queue``, oldest first."""
        return [m["headers"]["trace_key"] for m in queued(self.redis, queue)]

    def notification(self, record_id: str, sobject: str = "Opportunity") -> bytes:
        """The outbound message the org sends for the record as it is now: a late one."""
        sim = self.sandbox.salesforce.simulator
        definition = sim.definitions[sobject]
        note = Notification(sim._next_notification_id(), sobject,
                            snapshot(sim.store.get(sobject, record_id), definition.fields))
        return build_message([note], org_id=sim.org_id, action_id=definition.action_id,
                             session_id=None, enterprise_url=sim.envelope.enterprise_url,
                             partner_url=sim.envelope.partner_url)

    def unwon(self, count: int) -> list[str]:
        """Opportunities not yet Closed Won, in the world's order."""
        return [o["Id"] for o in self.sandbox.world.of("Opportunity")
                if o["StageName"] != "Closed Won"][:count]

    def query_calls(self) -> int:
        calls = self.sandbox.salesforce.simulator.limits.calls
        return calls[("GET", "query")]


@pytest.fixture
def sweeping_on(redis_url: str, redis_client: redis.Redis) -> Iterator[Any]:
    """``sweeping_on(sandbox, **settings)``: the sweeps of that sandbox on the test Redis."""
    clients: list[SalesforceClient] = []

    def make(sandbox: Sandbox, **overrides: Any) -> Sweeping:
        settings = sandbox_settings(sandbox, redis_url, **overrides)
        salesforce = build_salesforce(settings)
        clients.append(salesforce)
        sweeper = Sweeper(settings, redis_client, salesforce, MessageFactory(celery_app))
        return Sweeping(sandbox, settings, redis_client, salesforce, sweeper)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def sweeping(sandbox: Sandbox, sweeping_on: Any) -> Sweeping:
    return sweeping_on(sandbox)


