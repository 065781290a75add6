"""Tasks that fail on demand while holding secrets and personal data (tests only)."""

from __future__ import annotations

import logging
from typing import Any

from o2c_workers import app
from o2c_workers.backoff import RetryPolicy
from o2c_workers.errors import BusinessError, Transient

SECRET = "sk-live-0bs3rv4bility-s3cret"
EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"
FAST = RetryPolicy(max_attempts=3, base_s=0.05, cap_s=0.2)

log = logging.getLogger("o2c.tests.observability")


@app.task(name="o2c.order.obs_fail", bind=True, retry_policy=FAST)
def obs_fail(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    api_secret = payload["api_secret"]
    log.info("working on an order for %s", payload["contact"]["Email"],
             extra={"api_secret": api_secret, "contact": payload["contact"]})
    mode = payload["mode"]
    if mode == "business":
        raise BusinessError(f"credit hold on the account of {EMAIL}", category="credit_hold")
    if mode == "transient":
        raise Transient(f"the ERP answered 503 for token={api_secret}")
    if mode == "unexpected":
        raise RuntimeError(f"Authorization: token key:{api_secret} refused for {EMAIL}")
    return payload
