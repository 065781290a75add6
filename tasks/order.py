"""Tasks of the order domain: submit once, write back, follow status changes."""

from __future__ import annotations

from typing import Any

from o2c_workers import app
from o2c_workers.base_task import O2CTask
from o2c_workers.chain import ChainContext
from o2c_workers.services import orders


@app.task(name="o2c.order.submit_order", bind=True)
def submit_order(self: O2CTask, payload: dict[str, Any]) -> dict[str, Any]:
    result = orders.submit_order(ChainContext.load(payload), erp=self.runtime.erp)
    booked = result.need_erp_order()
    self.record("order_submitted", milestone="booked", erp_order=booked.name,
                grand_total=str(booked.grand_total), currency=booked.currency)
    return result.dump()


@app.task(name="o2c.order.write_back", bind=True)
def write_back(self: O2CTask, payload: dict[str, Any]) -> None:
    rt = self.runtime
    ctx = ChainContext.load(payload)
    orders.write_back(ctx, sf=rt.salesforce, fields=rt.fields)
    self.record("written_back", milestone="written_back", erp_order=ctx.need_erp_order().name)


@app.task(name="o2c.order.sync_status", bind=True)
def sync_status(self: O2CTask, event: dict[str, Any]) -> None:
    rt = self.runtime
    current = orders.sync_status(event["name"], sf=rt.salesforce, erp=rt.erp, fields=rt.fields)
    self.record("order_status", trace_key=orders.opportunity_of_order(current),
                erp_order=current.name, status=current.status)
