"""Tasks that record what the fleet's base task and signals hand them (tests only)."""

from __future__ import annotations

import json
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from o2c_workers import app
from o2c_workers.backoff import RetryPolicy
from o2c_workers.errors import BusinessError, Throttled, Transient
from o2c_workers.waiting import waits_of

PROBE_KEY = "probe:calls"
FAST = RetryPolicy(max_attempts=3, base_s=0.05, cap_s=0.2)
#: More attempts than Celery's default ``max_retries`` (3) allows.
SIX = RetryPolicy(max_attempts=6, base_s=0.05, cap_s=0.2)


def _runs(task: Any) -> int:
    """How many times this step of this trace key has started (this run included)."""
    calls = [json.loads(raw) for raw in task.runtime.redis.lrange(PROBE_KEY, 0, -1)]
    return sum(1 for c in calls if c["task"] == task.name and c["trace_key"] == task.trace_key)


def _probe(task: Any, payload: dict[str, Any]) -> dict[str, Any]:
    domain = task.name.split(".")[1]
    waits = waits_of(task.request)[0]
    task.runtime.redis.rpush(PROBE_KEY, json.dumps({
        "task": task.name, "trace_key": task.trace_key, "retries": task.request.retries,
        "waits": waits, "at": time.time(),
    }))
    pause = payload.get("sleep", {}).get(domain)
    if pause and task.request.retries == 0 and not task.request.delivery_info.get("redelivered"):
        time.sleep(pause)
    if payload.get("sleep_once", {}).get(domain) and _runs(task) == 1:
        time.sleep(payload["sleep_once"][domain])  # only the first run of this step
    if payload.get("record"):
        task.record("probed")
    if waits < payload.get("throttle", {}).get(domain, 0):
        raise Throttled("no ERP slot within 5 s", reason="limiter:rate", retry_after_s=0.2)
    plan = payload.get("fail", {}).get(domain)
    if plan == "business":
        raise BusinessError("credit hold on the account", category="credit_hold")
    if isinstance(plan, int) and task.request.retries < plan:
        raise Transient("the ERP answered 503")
    return {**payload, "seen": [*payload.get("seen", []), domain]}


@app.task(name="o2c.customer.probe_step", bind=True, retry_policy=FAST)
def customer_probe(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    return _probe(self, payload)


@app.task(name="o2c.pricing.probe_step", bind=True, retry_policy=FAST)
def pricing_probe(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    return _probe(self, payload)


@app.task(name="o2c.order.probe_step", bind=True, retry_policy=FAST)
def order_probe(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    return _probe(self, payload)


@app.task(name="o2c.order.probe_six", bind=True, retry_policy=SIX)
def order_six(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    return _probe(self, payload)


@app.task(name="o2c.order.probe_hang", bind=True, time_limit=2, soft_time_limit=1)
def order_hang(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Hangs through its soft time limit (1 s) into its hard one (2 s): the process is
    killed, as a step stuck in a C call or a blocking socket would be."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            time.sleep(0.1)
        except SoftTimeLimitExceeded:
            pass
    return payload


@app.task(name="o2c.customer.probe_countdown", bind=True)
def customer_countdown(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Retries once with a 6 s countdown."""
    result = _probe(self, payload)
    if self.request.retries == 0:
        raise self.retry(countdown=6, max_retries=1)
    return result
