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
import json, sys, threading, time
from o2c_workers import app
from tasks.customer import ensure_customer

seen = []

def listen():
    # The harness's own subscription: a connection error would end the thread unseen and
    # leave nothing to judge, so it says so on stderr and subscribes again.
    while True:
        try:
            with app.connection_for_read() as conn:
                app.events.Receiver(conn, handlers={"task-sent": seen.append}).capture(
                    limit=None, timeout=None, wakeup=False)
        except Exception as exc:
            print(f"listener: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            time.sleep(0.2)

threading.Thread(target=listen, daemon=True).start()
payload = {"trace_key": "0065g0000000001AAA", "contact": {"Email": "jane.doe@example.com"}}
deadline = time.monotonic() + 20
while not seen and time.monotonic() < deadline:  # until the subscription is live
    ensure_customer.apply_async(args=[payload], headers={"trace_key": "0065g0000000001AAA"})
    ensure_customer.apply_async(args=[payload])
    time.sleep(0.3)
time.sleep(0.5)
print(json.dumps([{k: e.get(k) for k in ("name", "args", "kwargs")} for e in seen]))
"""


@pytest.mark.slow
def test_sent_events_and_messages_show_no_payload(redis_url, redis_client):
    done = subprocess.run([sys.executable, "-c", PUBLISHER], cwd=ROOT, env=worker_env(redis_url),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    events = json.loads(done.stdout)
    assert events, f"no task-sent event arrived: {done.stderr[-2000:]}"
    assert {(e["args"], e["kwargs"]) for e in events} <= {
        ("<o2c.customer.ensure_customer 0065g0000000001AAA>", "{}"),
        ("<o2c.customer.ensure_customer>", "{}")}
    assert "jane.doe" not in done.stdout
    messages = queued(redis_client, "customer")
    assert messages and all("jane.doe" not in json.dumps(m["headers"]) for m in messages)
