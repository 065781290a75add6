"""Redis Sentinel: the fleet, the receiver and the state client follow the master through a
failover, with a real Sentinel and two real Redis servers (``tests.sentinel_group``).

The primary is SIGKILLed, as a host crash; what was written and replicated before is kept,
and everything after lands on the promoted replica. The fleet's settings are the shipped
defaults; only the Sentinel's own (a primary down after 1 s) are the test's.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
import requests

from config import load_settings
from o2c_workers import app as celery_app
from o2c_workers import keys
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.celery_app import celery_config
from o2c_workers.enqueue import MessageFactory
from o2c_workers.receiver.app import Receiver
from o2c_workers.runtime import connect
from o2c_workers.sandbox.http import serve
from tests import soapmsg
from tests.plugins.workers import start_worker, wait_for
from tests.probe_tasks import PROBE_KEY
from tests.sentinel_group import SentinelGroup, sentinel_group  # noqa: F401

pytestmark = pytest.mark.slow

TOKEN = "s3cret-webhook-token"
#: A failover here takes 2-3 s: the sentinel's 1 s, its election, the promotion.
FAILOVER_S = 30.0


def enqueue(client: redis.Redis, trace_key: str) -> None:
    msg = MessageFactory(celery_app).build("o2c.pricing.probe_step",
                                           args=[{"trace_key": trace_key}], trace_key=trace_key)
    assert AtomicWriter(client).run([Item(["always"], [msg.push_op()])]) == [True]


def ran(client: redis.Redis) -> set[str]:
    return {json.loads(raw)["trace_key"] for raw in client.lrange(PROBE_KEY, 0, -1)}


def until_written(action: Any, *, timeout_s: float = FAILOVER_S) -> float:
    """Retry ``action`` (a write) as a caller would until it lands; the seconds it took."""
    started = time.monotonic()
    while True:
        try:
            action()
            return time.monotonic() - started
        except redis.RedisError:
            if time.monotonic() - started > timeout_s:
                raise
            time.sleep(0.2)


def test_the_state_client_follows_the_master_through_a_failover(
        sentinel_group: SentinelGroup) -> None:  # noqa: F811
    group = sentinel_group
    client = connect(group.url)
    client.set("before", "kept")
    group.replicated()
    group.kill_primary()
    took = until_written(lambda: client.set("after", "landed"))
    group.wait_failover()
    assert group.master_port() == group.replica_port
    promoted = group.server(group.replica_port)
    assert promoted.get("before") == b"kept" and promoted.get("after") == b"landed"
    assert took < FAILOVER_S
    client.close()


def test_the_receivers_batch_writer_writes_on_the_master(
        sentinel_group: SentinelGroup) -> None:  # noqa: F811
    """The receiver's own connections (``AtomicWriter``) ask the sentinels too: redis-py's
    lazy connect would open localhost:6379 instead, and acknowledge writes made there."""
    group = sentinel_group
    client = connect(group.url)
    enqueue(client, "WRITTEN")
    assert group.server(group.master_port()).llen("pricing") == 1
    group.kill_primary()
    until_written(lambda: enqueue(client, "AFTER"))
    group.wait_failover()
    assert group.server(group.replica_port).llen("pricing") == 2
    client.close()


def test_the_fleet_and_the_receiver_carry_on_through_a_failover(
        sentinel_group: SentinelGroup, tmp_path: Any) -> None:  # noqa: F811
    """A worker and the receiver on the ``sentinel://`` URL: steps enqueued before the
    primary dies (and replicated) and after it all run; the receiver answers Salesforce
    503 while there is no master and acknowledges its resend on the promoted one."""
    group = sentinel_group
    client = connect(group.url)
    worker = start_worker(group.url, queues="pricing", include="tests.probe_tasks")
    settings = load_settings(redis_url=group.url, webhook_token=TOKEN,
                             salesforce_org_ids=[soapmsg.ORG_ID])
    celery_app.conf.update(celery_config(settings))
    receiver = Receiver(settings, redis_client=connect(group.url, retries=1),
                        celery_app=celery_app)
    server = serve(receiver, port=0, name="receiver")
    outbound = f"{server.url}/salesforce/outbound?token={TOKEN}"
    try:
        before = [f"BEFORE-{n}" for n in range(10)]
        for key in before:
            enqueue(client, key)
        wait_for(lambda: len(ran(client)) >= 3, what="the worker to run steps")
        answer = requests.post(outbound, data=soapmsg.won_message([1]), timeout=10)
        assert answer.status_code == 200 and b"<Ack>true</Ack>" in answer.content
        group.replicated()

        group.kill_primary()
        # Salesforce resends what was not acknowledged until it is.
        statuses: list[int] = []
        deadline = time.monotonic() + FAILOVER_S
        while time.monotonic() < deadline:
            answer = requests.post(outbound, data=soapmsg.won_message([2]), timeout=10)
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                break
            assert answer.status_code == 503, answer.text
            time.sleep(0.5)
        assert statuses[-1] == 200 and b"<Ack>true</Ack>" in answer.content, statuses
        after = [f"AFTER-{n}" for n in range(10)]
        until_written(lambda: [enqueue(client, key) for key in after])

        try:
            wait_for(lambda: set(before + after) <= ran(client), timeout_s=FAILOVER_S + 30,
                     what="every step, before and after the failover, to run")
        except AssertionError:
            missing = sorted(set(before + after) - ran(client))
            raise AssertionError(f"{missing} never ran; the worker said:\n"
                                 f"{worker.log_text()[-4000:]}") from None
        group.wait_failover()
        promoted = group.server(group.replica_port)
        # Both notifications are on the promoted master: one message each on their queue.
        assert promoted.llen("customer") == 2
        assert promoted.exists(keys.dedupe_sf(settings.key_prefix, soapmsg.notification_id(1)))
        assert promoted.exists(keys.dedupe_sf(settings.key_prefix, soapmsg.notification_id(2)))
    finally:
        server.stop()
        worker.stop()
        client.close()
