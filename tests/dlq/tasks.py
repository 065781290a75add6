"""A last chain step that resolves its trace key's dead letters, as the O2C chain's does."""

from __future__ import annotations

from typing import Any

from o2c_workers import app
from tests.probe_tasks import FAST, _probe


@app.task(name="o2c.order.probe_finish", bind=True, retry_policy=FAST)
def order_finish(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    result = _probe(self, payload)
    self.resolve_dead_letters()
    return result
