"""The service layer with real clients against the sandbox's simulators over HTTP: no worker."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
import redis

from config import Settings, load_settings
from o2c_workers.chain import ChainContext
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.erp import build_adapter
from o2c_workers.salesforce import build_salesforce
from o2c_workers.sandbox import Sandbox
from o2c_workers.services import customer
from o2c_workers.services.left import LeftWon
from o2c_workers.services.ports import ErpAdapter, SalesforceApi, Write
from o2c_workers.writeback import Outbox
from o2c_workers.writeback.flusher import Flusher


@dataclass
class SentNow:
    """The real outbox and a real flusher, composed so that an accepted write is sent at
    once: the services' writes land in Salesforce before the call returns."""

    outbox: Outbox
    flusher: Flusher

    def accept(self, writes: Sequence[Write]) -> int:
        taken = self.outbox.accept(writes)
        self.flusher.drain()
        return taken


@dataclass
class Services:
    sandbox: Sandbox
    settings: Settings
    sf: SalesforceApi
    erp: ErpAdapter
    out: SentNow
    left: LeftWon

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
    sf = build_salesforce(settings)
    outbox = Outbox(redis_client, prefix=settings.key_prefix, flush_s=settings.sf_flush_s)
    flusher = Flusher(outbox, salesforce=lambda: sf, client=redis_client,
                      dead_letters=DeadLetterStore(redis_client, prefix=settings.key_prefix))
    left = LeftWon(redis_client, prefix=settings.key_prefix, ttl_s=settings.dedupe_ttl_s)
    return Services(sandbox, settings, sf, erp, SentNow(outbox, flusher), left)


@pytest.fixture
def services(sandbox: Sandbox, redis_url: str, redis_client: redis.Redis) -> Iterator[Services]:
    yield services_on(sandbox, redis_url, redis_client)
