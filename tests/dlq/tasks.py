"""Order-domain probes (tests only): a last chain step, as the O2C chain's write-back is,
and a step that kills the process running it."""

from __future__ import annotations

import os
import signal
from typing import Any

from o2c_workers import app
from tests.probe_tasks import FAST, _probe, _runs


@app.task(name="o2c.order.probe_finish", bind=True, retry_policy=FAST)
def order_finish(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    return _probe(self, payload)


@app.task(name="o2c.order.probe_kill", bind=True)
def order_kill(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """SIGKILLs its own process on its first ``payload["die"]`` runs (all, if absent), as a
    step that runs out of memory or crashes in a native library would."""
    result = _probe(self, payload)
    if _runs(self) <= payload.get("die", float("inf")):
        os.kill(os.getpid(), signal.SIGKILL)
    return result
