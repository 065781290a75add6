"""A last chain step, in the order domain, as the O2C chain's write-back is (tests only)."""

from __future__ import annotations

from typing import Any

from o2c_workers import app
from tests.probe_tasks import FAST, _probe


@app.task(name="o2c.order.probe_finish", bind=True, retry_policy=FAST)
def order_finish(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    return _probe(self, payload)
