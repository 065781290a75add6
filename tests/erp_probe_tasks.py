"""Tasks that call the ERP through a worker's own adapter and limiter (tests and benchmarks).

Each read is a Sales Order lookup by the id ``probe-<pid>``: the ERP simulator's record of
calls (its ``query``) then tells which worker process sent it. Each write creates a Customer
(a lookup, then a POST). A finished task pushes one JSON line onto ``DONE_KEY``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from o2c_workers import app
from o2c_workers.backoff import RetryPolicy
from o2c_workers.models import CustomerData

DONE_KEY = "erp_probe:done"
#: Short Celery retries, so a task throttled by the limiter comes back within a test.
PROBE_RETRY = RetryPolicy(max_attempts=30, base_s=0.2, cap_s=1.0)


def probe_tag(pid: int) -> str:
    """The Salesforce id a process's reads look up: it shows in the ERP's record."""
    return f"probe-{pid}"


def _calls(task: Any, payload: dict[str, Any]) -> dict[str, Any]:
    erp = task.runtime.erp
    started = time.time()
    tag = probe_tag(os.getpid())
    for _ in range(int(payload.get("reads", 1))):
        erp.find_sales_order(tag)
    for n in range(int(payload.get("writes", 0))):
        erp.ensure_customer(CustomerData(
            salesforce_id=f"probe-{payload['id']}-{n}", name=f"Probe {payload['id']}-{n}",
            country="Germany", currency="EUR"))
    record = {"id": payload["id"], "pid": os.getpid(), "retries": task.request.retries,
              "waits": int(getattr(task.request, "o2c_waits", None) or 0),
              "started": started, "finished": time.time()}
    task.runtime.redis.rpush(DONE_KEY, json.dumps(record))
    return record


@app.task(name="o2c.order.erp_probe", bind=True, retry_policy=PROBE_RETRY)
def erp_probe(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """ERP calls through the fleet-wide limiter (when one is configured)."""
    return _calls(self, payload)


@app.task(name="o2c.order.erp_probe_shipped", bind=True)
def erp_probe_shipped(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """The same calls under the shipped retry policy (``O2C_RETRY_*``)."""
    return _calls(self, payload)


@app.task(name="o2c.order.erp_probe_celery_limited", bind=True, retry_policy=PROBE_RETRY,
          rate_limit="20/s")
def erp_probe_celery_limited(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """The same calls held back only by Celery's ``rate_limit``, which is per worker node."""
    return _calls(self, payload)


@app.task(name="o2c.order.erp_probe_celery_split", bind=True, retry_policy=PROBE_RETRY,
          rate_limit="10/s")
def erp_probe_celery_split(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Celery's ``rate_limit`` set to the ERP's limit divided among two worker nodes."""
    return _calls(self, payload)
