"""Tasks of the order domain: submit once, write back, follow status and stage changes."""

from __future__ import annotations

from functools import partial
from typing import Any

from o2c_workers import app, timeline
from o2c_workers.base_task import O2CTask
from o2c_workers.chain import ChainContext
from o2c_workers.services import lifecycle, orders, pricing
from o2c_workers.writeback import Write


@app.task(name="o2c.order.submit_order", bind=True)
def submit_order(self: O2CTask, payload: dict[str, Any]) -> dict[str, Any] | None:
    rt = self.runtime
    reprice = partial(pricing.validate_order, sf=rt.salesforce, erp=rt.erp,
                      max_discount_percent=rt.settings.max_discount_percent)
    result = lifecycle.book(ChainContext.load(payload), sf=rt.salesforce, out=rt.outbox,
                            erp=rt.erp, left=rt.left_won, reprice=reprice, fields=rt.fields,
                            cancel_on_lost=rt.settings.cancel_on_lost)
    if isinstance(result, pricing.Skipped):
        self.record("skipped", outcome=timeline.SKIPPED, stage=result.stage)
        self.end_chain()
        return None
    if isinstance(result, lifecycle.Followed):
        # Lost while it was being booked: the order followed it; nothing to write back.
        _followed(self, result)
        self.end_chain()
        return None
    booked = result.order
    self.record("order_submitted", milestone="booked", erp_order=booked.name,
                action=result.action, amended_from=result.amended_from,
                grand_total=str(booked.grand_total), currency=booked.currency)
    return result.ctx.dump()


@app.task(name="o2c.order.write_back", bind=True)
def write_back(self: O2CTask, payload: dict[str, Any]) -> None:
    rt = self.runtime
    ctx = ChainContext.load(payload)
    orders.write_back(ctx, out=rt.outbox, fields=rt.fields)
    self.record("written_back", milestone="written_back", erp_order=ctx.need_erp_order().name)


@app.task(name="o2c.order.write_status", bind=True)
def write_status(self: O2CTask, payload: dict[str, Any]) -> None:
    """Accept status writes into the outbox again: the replay of a write-back dead letter
    (``o2c_workers.writeback.failures``), still ordered by its versions."""
    writes = [Write.load(w) for w in payload["writes"]]
    taken = self.runtime.outbox.accept(writes)
    self.record("write_accepted", fields=taken)


@app.task(name="o2c.order.sync_status", bind=True)
def sync_status(self: O2CTask, event: dict[str, Any]) -> None:
    rt = self.runtime
    current = orders.sync_status(event["name"], out=rt.outbox, erp=rt.erp, fields=rt.fields,
                                 event=event)
    self.record("order_status", trace_key=orders.opportunity_of_order(current),
                erp_order=current.name, status=current.status)


@app.task(name="o2c.order.follow_opportunity", bind=True)
def follow_opportunity(self: O2CTask, payload: dict[str, Any]) -> None:
    """The opportunity left Closed Won (or changed stage): its ERP order follows it."""
    rt = self.runtime
    ctx = ChainContext.load(payload)
    _followed(self, lifecycle.follow_opportunity(ctx.trace_key, sf=rt.salesforce,
                                                 out=rt.outbox, erp=rt.erp, left=rt.left_won,
                                                 fields=rt.fields,
                                                 cancel_on_lost=rt.settings.cancel_on_lost))


def _followed(task: O2CTask, done: lifecycle.Followed) -> None:
    order = done.order.name if done.order else None
    if done.action == lifecycle.CANCELLED:
        task.record("order_cancelled", outcome=timeline.CANCELLED, stage=done.stage,
                    erp_order=order)
    else:
        task.record("followed", closes=True, action=done.action, stage=done.stage,
                    erp_order=order)
