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
from o2c_workers.sweeps.sweeper import Sweeper
from o2c_workers.domains import DOMAINS


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
        import orjson

        raw = self.redis.lrange(queue, 0, -1)
        return [orjson.loads(m)["headers"]["trace_key"] for m in reversed(raw)]

    def query_calls(self) -> int:
        calls = self.sandbox.salesforce.simulator.limits.calls
        return calls[("GET", "query")]


@pytest.fixture
def sweeping(sandbox: Sandbox, redis_url: str, redis_client: redis.Redis) -> Iterator[Sweeping]:
    settings = sandbox_settings(sandbox, redis_url)
    salesforce = build_salesforce(settings)
    sweeper = Sweeper(settings, redis_client, salesforce, MessageFactory(celery_app))
    yield Sweeping(sandbox, settings, redis_client, salesforce, sweeper)
    salesforce.close()


__all__ = ["DOMAINS", "Sweeping", "sandbox_settings"]
