"""Tasks of the payment domain: ERP payments applied to their opportunities."""

from __future__ import annotations

from typing import Any

from o2c_workers import app
from o2c_workers.base_task import O2CTask
from o2c_workers.services import billing


@app.task(name="o2c.payment.apply_payment", bind=True)
def apply_payment(self: O2CTask, event: dict[str, Any]) -> None:
    rt = self.runtime
    for synced in billing.apply_payment(event["name"], out=rt.outbox, erp=rt.erp,
                                        fields=rt.fields, event=event):
        status = billing.payment_status(synced.invoice)
        self.record("paid" if status == "Paid" else "payment_received",
                    trace_key=synced.opportunity_id,
                    milestone="paid" if status == "Paid" else None,
                    payment=event["name"], invoice=synced.invoice.name,
                    outstanding=str(synced.invoice.outstanding), status=status)
