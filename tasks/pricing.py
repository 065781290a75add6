"""Tasks of the pricing domain: prices, discount policy, tax and credit before booking."""

from __future__ import annotations

from typing import Any

from o2c_workers import app, timeline
from o2c_workers.base_task import O2CTask
from o2c_workers.chain import ChainContext
from o2c_workers.services import pricing


@app.task(name="o2c.pricing.validate_order", bind=True)
def validate_order(self: O2CTask, payload: dict[str, Any]) -> dict[str, Any] | None:
    rt = self.runtime
    result = pricing.validate_order(ChainContext.load(payload), sf=rt.salesforce, erp=rt.erp,
                                    max_discount_percent=rt.settings.max_discount_percent)
    if isinstance(result, pricing.Skipped):
        # No longer won: the chain ends here, with no order and no dead letter.
        self.record("skipped", outcome=timeline.SKIPPED, stage=result.stage)
        self.end_chain()
        return None
    priced = result.pricing
    assert priced is not None
    self.record("priced", net_total=str(priced.net_total), tax_rate=str(priced.tax_rate),
                currency=result.need_order().currency)
    return result.dump()

