"""Celery's ``task-sent`` events (what Flower shows before a worker takes a task) carry the
short form of the arguments, never the payload."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import queued
from tests.plugins.workers import ROOT, worker_env

PUBLISHER = """
import base64, json, os, time
import redis
from o2c_workers import app
from tasks.customer import ensure_customer

# What Flower's event receiver reads, taken off the wire: kombu publishes each event on the
# Redis channel "/<db>.celeryev/<routing key>". Subscribed (and confirmed) before the
# first publish, so none is missed, whatever the machine's load.
client = redis.Redis.from_url(os.environ["O2C_REDIS_URL"])
db = client.connection_pool.connection_kwargs.get("db", 0)
subscription = client.pubsub()
subscription.subscribe(f"/{db}.celeryev/task.sent")
assert subscription.get_message(timeout=10)["type"] == "subscribe"
payload = {"trace_key": "0065g0000000001AAA", "contact": {"Email": "jane.doe@example.com"}}
ensure_customer.apply_async(args=[payload], headers={"trace_key": "0065g0000000001AAA"})
ensure_customer.apply_async(args=[payload])
seen, deadline = [], time.monotonic() + 20
while len(seen) < 2 and time.monotonic() < deadline:
    message = subscription.get_message(timeout=1)
    if message and message["type"] == "message":
        seen.append(json.loads(base64.b64decode(json.loads(message["data"])["body"])))
print(json.dumps([{k: e.get(k) for k in ("type", "name", "args", "kwargs")} for e in seen]))
"""


@pytest.mark.slow
def test_sent_events_and_messages_show_no_payload(redis_url, redis_client):
    done = subprocess.run([sys.executable, "-c", PUBLISHER], cwd=ROOT, env=worker_env(redis_url),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    events = json.loads(done.stdout)
    assert len(events) == 2, f"task-sent events: {events} {done.stderr[-2000:]}"
    assert {e["type"] for e in events} == {"task-sent"}
    assert {e["name"] for e in events} == {"o2c.customer.ensure_customer"}
    assert {(e["args"], e["kwargs"]) for e in events} == {
        ("<o2c.customer.ensure_customer 0065g0000000001AAA>", "{}"),
        ("<o2c.customer.ensure_customer>", "{}")}
    assert "jane.doe" not in done.stdout
    messages = queued(redis_client, "customer")
    assert messages and all("jane.doe" not in json.dumps(m["headers"]) for m in messages)
