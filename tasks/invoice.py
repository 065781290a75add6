"""Tasks of the invoice domain: ERP invoices reconciled and written back to Salesforce."""

from __future__ import annotations

from typing import Any

from o2c_workers import app
from o2c_workers.base_task import O2CTask
from o2c_workers.services import billing


@app.task(name="o2c.invoice.sync_invoice", bind=True)
def sync_invoice(self: O2CTask, event: dict[str, Any]) -> None:
    rt = self.runtime
    synced = billing.sync_invoice(event["name"], out=rt.outbox, erp=rt.erp, fields=rt.fields,
                                  event=event)
    self.record("invoiced", trace_key=synced.opportunity_id, milestone="invoiced",
                invoice=synced.invoice.name, grand_total=str(synced.invoice.grand_total),
                currency=synced.invoice.currency, status=synced.invoice.status)
