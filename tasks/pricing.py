"""Tasks of the pricing domain: prices, discount policy, tax and credit before booking."""

from __future__ import annotations

from typing import Any

from o2c_workers import app
from o2c_workers.base_task import O2CTask
from o2c_workers.services import pricing


@app.task(name="o2c.pricing.validate_order", bind=True)
def validate_order(self: O2CTask, ctx: dict[str, Any]) -> dict[str, Any]:
    rt = self.runtime
    result = pricing.validate_order(ctx, sf=rt.salesforce, erp=rt.erp,
                                    max_discount_percent=rt.settings.max_discount_percent)
    self.record("priced", net_total=result["pricing"]["net_total"],
                tax_rate=result["pricing"]["tax_rate"], currency=result["order"]["currency"])
    return result
