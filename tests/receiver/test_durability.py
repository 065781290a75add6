"""``O2C_ENQUEUE_MIN_REPLICAS``: no Ack before a replica has the enqueue (real primary and
replica started here, the receiver under gunicorn and as a WSGI callable)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config import ConfigError, load_settings
from o2c_workers import app as celery_app
from o2c_workers.dev.redis_runtime import (
    RedisHandle,
    start_private,
)
from o2c_workers.receiver.app import Receiver
from o2c_workers.receiver.soap import ACK
from tests import soapmsg
from tests.helpers import call_wsgi, queued
from tests.receiver.conftest import TOKEN
from tests.receiver.test_erp_events import event
from tests.receiver.test_erp_events import post as post_erp
from tests.receiver.test_gunicorn import Gunicorn
from tests.replica import Replica


@pytest.fixture
def primary(tmp_path: Path) -> Iterator[RedisHandle]:
    (tmp_path / "primary").mkdir()
    handle = start_private(workdir=tmp_path / "primary")
    yield handle
    handle.stop()


@pytest.fixture
def replica(primary: RedisHandle, tmp_path: Path) -> Iterator[Replica]:
    server = Replica(primary, tmp_path / "replica")
    yield server
    if server.process is not None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


def waits(client: redis.Redis) -> int:
    """How many ``WAIT`` commands the server has run."""
    return int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


@pytest.mark.slow
def test_no_ack_before_a_replica_has_it_and_the_resend_is_enqueued_once(primary, replica):
    client = redis.Redis.from_url(primary.url)
    server = Gunicorn(primary.url, workers=1, env={"O2C_ENQUEUE_MIN_REPLICAS": "1"})
    try:
        first = server.post(soapmsg.won_message([1]))
        assert first.status_code == 200 and first.content == ACK
        replica.stop()
        refused = server.post(soapmsg.won_message([2]))
        assert refused.status_code == 503 and refused.content != ACK
        assert int(refused.headers["Retry-After"]) > 0
        resent = server.post(soapmsg.won_message([2]))
        assert resent.status_code == 503 and resent.content != ACK
        replica.start()
        again = server.post(soapmsg.won_message([2]))
        assert again.status_code == 200 and again.content == ACK
    finally:
        output = server.stop()
    assert "not_replicated" in output
    traces = [m["headers"]["trace_key"] for m in queued(client, "customer")]
    assert traces == ["0065g0000000001AAA", "0065g0000000002AAA"]
    assert [m["headers"]["trace_key"] for m in queued(replica.client(), "customer")] == traces


def receiver_on(primary: RedisHandle, **overrides: object) -> Receiver:
    """A receiver process of its own: its own connections to Redis."""
    settings = load_settings(redis_url=primary.url, webhook_token=TOKEN,
                             salesforce_org_ids=[soapmsg.ORG_ID], **overrides)
    return Receiver(settings, redis_client=redis.Redis.from_url(primary.url),
                    celery_app=celery_app)


def post(receiver: Receiver, body: bytes) -> tuple[int, dict[str, str], bytes]:
    return call_wsgi(receiver, "POST", "/salesforce/outbound", body, query=f"token={TOKEN}")


@pytest.mark.slow
def test_a_resend_to_another_receiver_waits_for_the_first_write(primary, replica):
    """The resend finds its dedupe mark and writes nothing; a bare ``WAIT`` on a connection
    that wrote nothing would answer at once while the replica still lacks the first write."""
    client = redis.Redis.from_url(primary.url)
    replica.pause(client)
    status, headers, _ = post(receiver_on(primary, enqueue_min_replicas=1),
                              soapmsg.won_message([3]))
    assert status == 503 and "Retry-After" in headers
    status, _, body = post(receiver_on(primary, enqueue_min_replicas=1),
                           soapmsg.won_message([3]))
    assert status == 503 and body != ACK
    replica.resume(client)
    status, _, body = post(receiver_on(primary, enqueue_min_replicas=1),
                           soapmsg.won_message([3]))
    assert status == 200 and body == ACK
    assert len(queued(client, "customer")) == 1
    assert len(queued(replica.client(), "customer")) == 1
    assert client.exists("o2c:receiver:replicated")


@pytest.mark.slow
def test_erp_events_wait_for_replicas_too(primary, replica):
    replica.stop()
    receiver = receiver_on(primary, enqueue_min_replicas=1,
                           erp_webhook_secret="erp-webhook-secret")
    status, headers, _ = post_erp(receiver, event(po_no="0065g00000AbCdE"))
    assert status == 503 and "Retry-After" in headers


@pytest.mark.slow
def test_by_default_no_wait_is_issued_and_no_replica_is_needed(primary):
    client = redis.Redis.from_url(primary.url)
    status, _, body = post(receiver_on(primary), soapmsg.won_message([4]))
    assert status == 200 and body == ACK
    assert waits(client) == 0
    status, _, body = post(receiver_on(primary), soapmsg.won_message([4]))
    assert status == 200 and body == ACK and waits(client) == 0
    assert len(queued(client, "customer")) == 1


@pytest.mark.parametrize(("name", "value"), [
    ("enqueue_min_replicas", -1), ("enqueue_replica_timeout_ms", 0),
    ("enqueue_replica_timeout_ms", 60_000)])
def test_bad_durability_settings_are_refused_by_name(name, value):
    with pytest.raises(ConfigError, match="O2C_" + name.upper()):
        load_settings(**{name: value})
