"""Sentry from a real worker to a local server behind a real DSN: what arrives, and what not."""

from __future__ import annotations

import time

import pytest

from o2c_workers import app as celery_app
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.enqueue import MessageFactory
from o2c_workers.sentry import scrub
from tests.observability.tasks import EMAIL, PHONE, SECRET
from tests.plugins.workers import start_worker, wait_for

TASK = "o2c.order.obs_fail"
TRACES = {"business": "0065g00000000B1AAA", "transient": "0065g00000000T1AAA",
          "unexpected": "0065g00000000U1AAA"}


def enqueue(client, mode: str) -> None:
    trace_key = TRACES[mode]
    payload = {"trace_key": trace_key, "mode": mode, "api_secret": SECRET,
               "contact": {"Email": EMAIL, "Phone": PHONE, "LastName": "Doe"}}
    msg = MessageFactory(celery_app).build(TASK, args=[payload], trace_key=trace_key,
                                           argsrepr=f"<{TASK} {trace_key}>")
    assert AtomicWriter(client).run([Item(["always"], [msg.push_op()])]) == [True]


def by_trace(events):
    out: dict[str, list[dict]] = {}
    for event in events:
        out.setdefault(event.get("tags", {}).get("trace_key", "?"), []).append(event)
    return out


@pytest.mark.slow
def test_worker_reports_exhausted_and_unexpected_errors_tagged_and_scrubbed(
        redis_url, redis_client, workers, sentry_sink):
    workers.append(start_worker(redis_url, include="tests.observability.tasks", queues="order",
                                env={"O2C_SENTRY_DSN": sentry_sink.dsn,
                                     "O2C_SENTRY_ENVIRONMENT": "test"}))
    for mode in TRACES:
        enqueue(redis_client, mode)
    events = wait_for(lambda: (lambda e: e if len(e) >= 2 else None)(
        by_trace(sentry_sink.events())), timeout_s=20, what="two Sentry events")
    time.sleep(1.0)  # anything else (a retry, a business error) would have arrived by now
    events = by_trace(sentry_sink.events())
    # Retries are not reported, only the exhaustion; business errors are off by default.
    assert sorted(events) == sorted([TRACES["transient"], TRACES["unexpected"]])
    assert [len(found) for found in events.values()] == [1, 1]
    [exhausted] = events[TRACES["transient"]]
    [unexpected] = events[TRACES["unexpected"]]
    for event, category in ((exhausted, "exhausted"), (unexpected, "unexpected")):
        tags = event["tags"]
        assert tags["domain"] == "order"
        assert tags["task"] == TASK
        assert tags["error_category"] == category
        assert tags["component"] == "worker"
        assert event["environment"] == "test"
    assert exhausted["exception"]["values"][-1]["type"] == "Transient"
    assert unexpected["exception"]["values"][-1]["type"] == "RuntimeError"
    assert exhausted["level"] == "error"
    raw = sentry_sink.raw()
    assert b"obs_fail" in raw
    for secret in (SECRET, EMAIL, PHONE, "jane.doe"):
        assert secret.encode() not in raw, secret
    # No local variables, no task arguments: only the tags say which transaction it was.
    assert b'"vars"' not in raw
    for event in (exhausted, unexpected):
        job = event.get("extra", {}).get("celery-job", {})
        assert not isinstance(job.get("args"), list)


@pytest.mark.slow
def test_business_errors_are_reported_only_when_configured(redis_url, redis_client, workers,
                                                           sentry_sink):
    workers.append(start_worker(redis_url, include="tests.observability.tasks", queues="order",
                                env={"O2C_SENTRY_DSN": sentry_sink.dsn,
                                     "O2C_SENTRY_REPORT_BUSINESS_ERRORS": "true"}))
    enqueue(redis_client, "business")
    [event] = wait_for(lambda: sentry_sink.events(), timeout_s=20, what="a Sentry event")
    assert event["tags"]["error_category"] == "credit_hold"
    assert event["tags"]["trace_key"] == TRACES["business"]
    assert event["level"] == "warning"
    assert EMAIL.encode() not in sentry_sink.raw()


def test_scrub_masks_secrets_and_personal_data_everywhere():
    event = {
        "event_id": "abc", "message": f"mail {EMAIL} with token={SECRET}",
        "request": {"url": f"https://x/salesforce/outbound?token={SECRET}",
                    "headers": {"Authorization": f"Bearer {SECRET}"}, "data": "<xml/>",
                    "cookies": {"sid": SECRET}},
        "extra": {"payload": {"Email": EMAIL, "MobilePhone": PHONE, "erp_api_secret": SECRET}},
        "breadcrumbs": {"values": [{"message": f"Authorization: token k:{SECRET}"}]},
        "tags": {"trace_key": "0065g00000000B1AAA"},
    }
    cleaned = repr(scrub(event))
    for secret in (SECRET, EMAIL, PHONE):
        assert secret not in cleaned
    assert "0065g00000000B1AAA" in cleaned
    assert scrub(event)["event_id"] == "abc"
