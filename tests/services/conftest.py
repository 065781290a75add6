"""The service layer with real clients against the sandbox's simulators over HTTP: no worker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from config import Settings, load_settings
from o2c_workers.chain import ChainContext
from o2c_workers.erp import build_adapter
from o2c_workers.salesforce import build_salesforce
from o2c_workers.sandbox import Sandbox
from o2c_workers.services import customer
from o2c_workers.services.ports import ErpAdapter, SalesforceApi


@dataclass
class Services:
    sandbox: Sandbox
    settings: Settings
    sf: SalesforceApi
    erp: ErpAdapter

    def won(self, opportunity_id: str) -> ChainContext:
        """The opportunity set Closed Won, and its chain after the first step, as
        ``validate_order`` receives it."""
        self.sf.update("Opportunity", opportunity_id, {"StageName": "Closed Won"})
        ctx = customer.ensure_customer(ChainContext(trace_key=opportunity_id),
                                       sf=self.sf, erp=self.erp)
        assert isinstance(ctx, ChainContext), ctx
        return ctx


def services_on(sandbox: Sandbox, redis_url: str, redis_client: redis.Redis) -> Services:
    """Real clients (no worker) pointed at ``sandbox``."""
    env = {k.removeprefix("O2C_").lower(): v for k, v in sandbox.env().items()}
    settings = load_settings(**env, redis_url=redis_url)
    erp = build_adapter(settings, redis_client)
    return Services(sandbox, settings, build_salesforce(settings), erp)


@pytest.fixture
def services(sandbox: Sandbox, redis_url: str, redis_client: redis.Redis) -> Iterator[Services]:
    yield services_on(sandbox, redis_url, redis_client)
