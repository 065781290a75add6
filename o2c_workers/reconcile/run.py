"""One reconcile run: read both systems, compare, explain from our records, and (with
``fix``) start the safe repairs. The CLI and ``GET /admin/reconcile`` both run this."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import requests
from celery import Celery
from redis import Redis

from config import Settings
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.erp import build_erpnext
from o2c_workers.erp.protocol import ErpAdapter
from o2c_workers.receiver.erp_events import ErpEventHandler
from o2c_workers.reconcile.check import check
from o2c_workers.reconcile.explain import explain
from o2c_workers.reconcile.findings import Report
from o2c_workers.reconcile.fix import Fixer
from o2c_workers.reconcile.read import Progress, QuerySource, Reader
from o2c_workers.runtime import write_back_fields
from o2c_workers.salesforce import SalesforceClient, build_salesforce
from o2c_workers.services.convert import WON
from o2c_workers.sweeps.sweeper import Sweeper


@dataclass
class Reconciler:
    settings: Settings
    redis: Redis
    salesforce: QuerySource
    erp: ErpAdapter
    #: Needed by ``fix`` only: the app whose task messages the repairs write.
    celery_app: Celery | None = None
    erp_calls: int = 0
    _owned: list[Any] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, *, redis_client: Redis,
              celery_app: Celery | None = None) -> Reconciler:
        """The clients a worker would have (the ERP's fleet-wide limiter included)."""
        salesforce: SalesforceClient = build_salesforce(settings)
        erp = build_erpnext(settings, redis_client)
        made = cls(settings, redis_client, salesforce, erp, celery_app)
        erp.http.session.hooks["response"].append(made._count_erp)
        made._owned += [salesforce, erp]
        return made

    def _count_erp(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.erp_calls += 1

    def close(self) -> None:
        for client in self._owned:
            client.close()

    def run(self, since: float, *, fix: bool = False, dry_run: bool = False,
            progress: Progress | None = None) -> Report:
        settings = self.settings
        fields = write_back_fields(settings)
        calls_before, started = self.erp_calls, time.monotonic()
        snap = Reader(settings, self.salesforce, self.erp, progress=progress).read(since)
        found = check(snap, fields)
        states = explain(self.redis, settings.key_prefix, found,
                         stall_after_s=settings.stall_after_s)
        report = Report(since, opportunities=len(snap.scope),
                        won=sum(1 for o in snap.opportunities.values()
                                if o.get("StageName") == WON),
                        orders=sum(len(o) for o in snap.orders.values()),
                        invoices=sum(len(i) for i in snap.invoices.values()),
                        salesforce_calls=snap.salesforce_calls, findings=found, fix=fix,
                        dry_run=dry_run)
        if fix:
            report.repairs = self.fixer().repair(snap, found, states, dry_run=dry_run)
        report.erp_calls = self.erp_calls - calls_before
        report.took_s = time.monotonic() - started
        return report

    def fixer(self) -> Fixer:
        if self.celery_app is None:
            raise ValueError("repairs need the fleet's Celery app")
        sweeper = Sweeper.build(self.settings, redis_client=self.redis,
                                salesforce=self.salesforce,  # type: ignore[arg-type]
                                celery_app=self.celery_app)
        events = ErpEventHandler(self.settings, messages=sweeper.messages,
                                 dead_letters=DeadLetterStore(
                                     self.redis, prefix=self.settings.key_prefix))
        return Fixer(sweeper, events, self.erp, write_back_fields(self.settings))
