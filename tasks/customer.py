"""Tasks of the customer domain: keep Salesforce accounts and ERP customers in step."""

from __future__ import annotations

from typing import Any

from o2c_workers import app, timeline
from o2c_workers.base_task import O2CTask
from o2c_workers.chain import ChainContext
from o2c_workers.services import customer
from o2c_workers.services.pricing import Skipped
from o2c_workers.services.shared_reads import HEADER, ReadGroup


@app.task(name="o2c.customer.ensure_customer", bind=True)
def ensure_customer(self: O2CTask, payload: dict[str, Any]) -> dict[str, Any] | None:
    """First step of a won opportunity: its account exists as an ERP customer."""
    ctx = ChainContext.load(payload)
    self.record("won", milestone="won", at=ctx.received_at,
                notification_id=ctx.notification_id)
    rt = self.runtime
    group = ReadGroup.from_header(getattr(self.request, HEADER, None))
    result = customer.ensure_customer(ctx, sf=rt.salesforce, erp=rt.erp,
                                      reads=rt.shared_reads, group=group)
    if isinstance(result, Skipped):
        # No longer won: the chain ends here, with no customer, no order, no dead letter.
        self.record("skipped", outcome=timeline.SKIPPED, stage=result.stage)
        self.end_chain()
        return None
    self.record("customer_synced", customer=result.need_customer().name)
    return result.dump()


@app.task(name="o2c.customer.sync_account", bind=True)
def sync_account(self: O2CTask, ctx: dict[str, Any]) -> None:
    """An account changed in Salesforce: create or link its ERP customer."""
    rt = self.runtime
    synced = customer.sync_account(ctx, sf=rt.salesforce, out=rt.outbox, erp=rt.erp,
                                   number_field=rt.fields.customer_number)
    self.record("customer_synced", milestone=timeline.SYNCED, customer=synced.name)
