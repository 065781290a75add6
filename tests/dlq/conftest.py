from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from config import Settings, load_settings
from o2c_workers import app as celery_app
from o2c_workers.dlq import DeadLetter, DeadLetterStore, ops
from o2c_workers.receiver.app import Receiver
from o2c_workers.receiver.replan import build_dlq
from tests import soapmsg
from tests.plugins.inprocess import fleet_in_process  # noqa: F401 - the fleet fixture

TOKEN = "s3cret-webhook-token"
ADMIN = "adm1n-t0ken-for-tests"
#: Retention of closed entries in these tests, days.
RETENTION_D = 3


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return load_settings(redis_url=redis_url, webhook_token=TOKEN,
                         salesforce_org_ids=[soapmsg.ORG_ID], admin_token=ADMIN,
                         dlq_retention_d=RETENTION_D)


@pytest.fixture
def dlq(settings: Settings, redis_client: redis.Redis) -> ops.Dlq:
    return build_dlq(settings, client=redis_client, actor="test")


@pytest.fixture
def store(dlq: ops.Dlq) -> DeadLetterStore:
    return dlq.store


@pytest.fixture
def receiver(settings: Settings, redis_client: redis.Redis) -> Receiver:
    return Receiver(settings, redis_client=redis_client, celery_app=celery_app)


def worker_entry(index: int = 1, *, category: str = "credit_hold", domain: str = "pricing",
                 trace_key: str | None = None, failed_at: float | None = None,
                 **extra: Any) -> DeadLetter:
    """A dead letter as the base task files it for the probe chain's pricing step."""
    at = time.time() if failed_at is None else failed_at
    payload = {"trace_key": trace_key or f"0065g00000{index:05d}AAA",
               "fail": {"pricing": "business"}, "seen": ["customer"]}
    fields: dict[str, Any] = {
        "trace_key": payload["trace_key"], "domain": domain,
        "task": f"o2c.{domain}.probe_step", "args": [payload], "payload": payload,
        "chain": ["o2c.order.probe_finish"], "error_class": "BusinessError",
        "category": category, "message": "credit hold on the account",
        "remediation": "Finance: release the hold.", "first_failed_at": at,
        "last_failed_at": at, "traceback": "Traceback ...\nBusinessError: credit hold",
    }
    fields.update(extra)
    return DeadLetter(**fields)
