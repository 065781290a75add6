"""``/readyz`` on RabbitMQ: ready only while the broker takes a connection and answers on it,
asked through the publisher's own pool, a good answer kept for a moment; 503 naming the
broker's problem (without credentials) when the vhost is gone, the port closed or the broker
silent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis

from config import Settings, load_settings
from o2c_workers import app as celery_app
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.receiver.app import Receiver
from o2c_workers.receiver.health import BROKER_CHECK_TIMEOUT_S, BROKER_GOOD_FOR_S, Health
from tests import soapmsg
from tests.amqp.conftest import ERP_SECRET, TOKEN, Broker, amqp_port, via
from tests.helpers import call_wsgi
from tests.proxy import TcpProxy
from tests.rabbitmq import VirtualHost, ctl, virtual_host


def receiver_on(redis_url: str, broker_url: str) -> Receiver:
    settings: Settings = load_settings(
        redis_url=redis_url, broker_url=broker_url, webhook_token=TOKEN,
        salesforce_org_ids=[soapmsg.ORG_ID], erp_webhook_secret=ERP_SECRET)
    return Receiver(settings, redis_client=redis.Redis.from_url(redis_url),
                    celery_app=celery_app)


def ready(receiver: Receiver) -> tuple[int, dict[str, str]]:
    status, _, body = call_wsgi(receiver, "GET", "/readyz")
    return status, json.loads(body)


def health(receiver: Receiver) -> Health:
    return receiver.routes["/readyz"]["GET"].__self__  # type: ignore[attr-defined, no-any-return]


def publisher_of(receiver: Receiver):
    check = health(receiver).broker
    assert check is not None
    return check.publisher


@pytest.fixture
def own_vhost() -> Iterator[VirtualHost]:
    with virtual_host(prefix="o2c-test-ready") as vhost:
        yield vhost


def test_ready_on_a_real_vhost_and_cheap_to_ask(redis_url, redis_client, broker: Broker,
                                                amqp_url: str):
    proxy = TcpProxy(amqp_port(amqp_url))
    receiver = receiver_on(redis_url, via(amqp_url, proxy.port))
    try:
        for _ in range(20):  # probes every few seconds, from several places
            assert ready(receiver) == (200, {"status": "ready"})
        time.sleep(BROKER_GOOD_FOR_S + 0.1)
        assert ready(receiver) == (200, {"status": "ready"})  # a round trip on the same one
        # One connection in all, the publisher's: the next publish takes it.
        status, _, _ = call_wsgi(receiver, "POST", "/salesforce/outbound",
                                 soapmsg.won_message([1]), query=f"token={TOKEN}")
        assert status == 200
        assert proxy.accepted == 1
    finally:
        publisher_of(receiver).close()
        proxy.close()
    assert broker.count("customer") == 1


@pytest.mark.slow
def test_a_deleted_vhost_is_not_ready_until_it_is_made_again(redis_url, redis_client,
                                                              own_vhost: VirtualHost):
    receiver = receiver_on(redis_url, own_vhost.url)
    assert ready(receiver)[0] == 200
    ctl("delete_vhost", own_vhost.name)
    try:
        time.sleep(BROKER_GOOD_FOR_S + 0.1)  # the good answer has run out
        status, body = ready(receiver)
        assert status == 503
        assert body["status"] == "unavailable" and "redis" not in body
        assert "RabbitMQ" in body["broker"] and own_vhost.name in body["broker"]
        assert "guest:guest" not in json.dumps(body)
    finally:
        ctl("add_vhost", own_vhost.name)
        ctl("set_permissions", "-p", own_vhost.name, "guest", ".*", ".*", ".*")
    # A bad answer is never kept: ready again at the next probe.
    assert ready(receiver) == (200, {"status": "ready"})
    publisher_of(receiver).close()


def test_a_closed_port_is_not_ready(redis_url, redis_client):
    receiver = receiver_on(redis_url, f"amqp://o2c:s3cret@127.0.0.1:{free_port()}/o2c")
    status, body = ready(receiver)
    assert status == 503
    assert "unavailable" in body["broker"] and "s3cret" not in json.dumps(body)


def test_a_silent_broker_is_not_ready_within_the_probes_timeout(redis_url, redis_client,
                                                                amqp_url: str):
    proxy = TcpProxy(amqp_port(amqp_url))
    receiver = receiver_on(redis_url, via(amqp_url, proxy.port))
    try:
        assert ready(receiver)[0] == 200
        proxy.freeze()
        time.sleep(BROKER_GOOD_FOR_S + 0.1)
        started = time.monotonic()
        status, body = ready(receiver)
        assert status == 503 and "did not answer" in body["broker"]
        assert time.monotonic() - started < BROKER_CHECK_TIMEOUT_S + 0.5
        proxy.restore()
        assert ready(receiver)[0] == 200  # on a new connection
    finally:
        publisher_of(receiver).close()
        proxy.close()


def test_redis_and_the_broker_both_named_when_both_fail(redis_client):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    receiver = Receiver(load_settings(
        redis_url=dead, broker_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/o2c",
        webhook_token=TOKEN, salesforce_org_ids=[soapmsg.ORG_ID]),
        redis_client=redis.Redis.from_url(dead, socket_connect_timeout=1),
        celery_app=celery_app)
    status, body = ready(receiver)
    assert status == 503 and set(body) == {"status", "redis", "broker"}
