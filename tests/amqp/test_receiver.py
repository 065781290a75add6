"""The receiver's promise on RabbitMQ, the receiver served over HTTP: no Ack before RabbitMQ
has confirmed every notification, no dedupe mark without a confirmed message, Salesforce's
resend published again after any failure, a duplicate of an acknowledged one publishing
nothing, and no Redis queue list ever written."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
import requests

from config import Settings, load_settings
from o2c_workers import app as celery_app
from o2c_workers import keys
from o2c_workers.amqp.publish import Publisher
from o2c_workers.dev.redis_runtime import RedisHandle
from o2c_workers.receiver.app import Receiver
from o2c_workers.receiver.erp_events import SIGNATURE_HEADER, signature
from o2c_workers.receiver.soap import ACK
from o2c_workers.sandbox.http import serve
from tests import soapmsg
from tests.amqp.conftest import ERP_SECRET, TOKEN, Broker, amqp_port, queue_lists, via
from tests.amqp.test_publish import fill, unfill
from tests.proxy import TcpProxy
from tests.rabbitmq import VirtualHost, ctl, virtual_host
from tests.receiver.test_gunicorn import Gunicorn
from tests.refusing import out_of_memory, private_redis  # noqa: F401  (a fixture)

WON = "0065g0000000001AAA"


@contextmanager
def served(settings: Settings, client: redis.Redis) -> Iterator[str]:
    """The receiver on a real HTTP server of its own; its URL."""
    server = serve(Receiver(settings, redis_client=client, celery_app=celery_app), port=0,
                   name="receiver")
    try:
        yield server.url
    finally:
        server.stop()


def post(url: str, body: bytes) -> requests.Response:
    return requests.post(f"{url}/salesforce/outbound", params={"token": TOKEN}, data=body,
                         timeout=30, headers={"Content-Type": "text/xml; charset=UTF-8",
                                              "SOAPAction": '""'})


def post_event(url: str, **doc: str) -> requests.Response:
    body = json.dumps({"event": "on_submit", "doctype": "Sales Invoice",
                       "name": "ACC-SINV-2026-00001", "modified": "2026-11-28 10:00:00.000001",
                       "doc": doc}).encode()
    return requests.post(f"{url}/erp/events", data=body, timeout=30,
                         headers={"Content-Type": "application/json",
                                  SIGNATURE_HEADER: signature(ERP_SECRET, body)})


def marked(client: redis.Redis, *indexes: int) -> list[bool]:
    return [bool(client.exists(keys.dedupe_sf("o2c", soapmsg.notification_id(i))))
            for i in indexes]


def traces(broker: Broker, queue: str) -> list[str]:
    return [m["headers"]["trace_key"] for m in broker.take(queue)]


def acked(response: requests.Response) -> bool:
    return response.status_code == 200 and response.content == ACK


def test_acked_once_confirmed_and_a_duplicate_publishes_nothing(amqp_settings, redis_client,
                                                                 broker: Broker):
    with served(amqp_settings, redis_client) as url:
        first = post(url, soapmsg.won_message([1, 2]))
        assert acked(first)
        # The answer came after the confirms: both are on their queue already.
        assert broker.count("customer") == 2
        assert marked(redis_client, 1, 2) == [True, True]
        assert redis_client.exists(keys.timeline("o2c", WON))
        for _ in range(2):  # Salesforce's resend after a valid ack
            assert acked(post(url, soapmsg.won_message([1, 2])))
        assert broker.count("customer") == 2
        event = post_event(url, po_no="0065g00000AbCdE")
        assert event.json()["status"] == "enqueued"
        assert post_event(url, po_no="0065g00000AbCdE").json()["status"] == "duplicate"
    assert broker.count("invoice") == 1
    [msg, _] = broker.take("customer")
    assert msg["headers"]["trace_key"] == WON
    assert msg["headers"]["task"] == "o2c.customer.ensure_customer"
    assert msg["args"][0]["notification_id"] == soapmsg.notification_id(1)
    assert queue_lists(redis_client) == 0


@pytest.fixture
def own_vhost() -> Iterator[VirtualHost]:
    with virtual_host(prefix="o2c-test-receiver") as vhost:
        yield vhost


def settings_on(redis_url: str, broker_url: str) -> Settings:
    return load_settings(redis_url=redis_url, broker_url=broker_url, webhook_token=TOKEN,
                         salesforce_org_ids=[soapmsg.ORG_ID], erp_webhook_secret=ERP_SECRET)


def won_and_lost() -> bytes:
    """A message of two notifications for two queues: a win (customer) and a loss (order)."""
    return soapmsg.envelope([
        soapmsg.notification(soapmsg.notification_id(1), "Opportunity",
                             soapmsg.opportunity(1)),
        soapmsg.notification(soapmsg.notification_id(2), "Opportunity",
                             soapmsg.opportunity(2, stage="Closed Lost"))])


@pytest.mark.slow
def test_no_ack_until_every_notification_is_confirmed(own_vhost, redis_url, redis_client):
    publisher = Publisher(own_vhost.url)
    broker = Broker(own_vhost.url)
    kept = fill(publisher, own_vhost, "order")
    with served(settings_on(redis_url, own_vhost.url), redis_client) as url:
        refused = post(url, won_and_lost())
        assert refused.status_code == 503 and b"<Ack>" not in refused.content
        # The win was confirmed, the loss nacked: no mark for either, so the resend comes.
        assert marked(redis_client, 1, 2) == [False, False]
        assert broker.count("customer") == 1
        assert broker.count("order") == kept
        unfill(publisher, own_vhost, "order")
        assert acked(post(url, won_and_lost()))
    assert marked(redis_client, 1, 2) == [True, True]
    # The first attempt's win is on its queue twice: a duplicate, never a loss.
    assert traces(broker, "customer") == [WON, WON]
    assert traces(broker, "order") == ["0065g0000000002AAA"]
    assert queue_lists(redis_client) == 0
    publisher.close()


@pytest.mark.slow
def test_rabbitmq_gone_is_503_without_a_mark_and_the_resend_is_enqueued(own_vhost, redis_url,
                                                                        redis_client):
    with served(settings_on(redis_url, own_vhost.url), redis_client) as url:
        assert acked(post(url, soapmsg.won_message([1])))
        ctl("delete_vhost", own_vhost.name)
        try:
            refused = post(url, soapmsg.won_message([2]))
            assert refused.status_code == 503
            assert b"resend later" in refused.content
            assert marked(redis_client, 2) == [False]
            assert not redis_client.exists(keys.timeline("o2c", "0065g0000000002AAA"))
        finally:
            ctl("add_vhost", own_vhost.name)
            ctl("set_permissions", "-p", own_vhost.name, "guest", ".*", ".*", ".*")
        assert acked(post(url, soapmsg.won_message([2])))
    assert marked(redis_client, 2) == [True]
    assert traces(Broker(own_vhost.url), "customer") == ["0065g0000000002AAA"]
    assert queue_lists(redis_client) == 0


def test_a_cut_connection_is_503_without_a_mark_and_the_resend_is_enqueued(
        amqp_settings, redis_client, broker: Broker, amqp_url: str):
    proxy = TcpProxy(amqp_port(amqp_url))
    settings = settings_on(str(amqp_settings.redis_url), via(amqp_url, proxy.port))
    try:
        with served(settings, redis_client) as url:
            assert acked(post(url, soapmsg.won_message([1])))
            proxy.cut()
            assert post(url, soapmsg.won_message([2])).status_code == 503
            assert post_event(url, po_no="0065g00000AbCdE").status_code == 503
            assert marked(redis_client, 2) == [False]
            proxy.restore()
            assert acked(post(url, soapmsg.won_message([2])))
            assert post_event(url, po_no="0065g00000AbCdE").json()["status"] == "enqueued"
    finally:
        proxy.close()
    assert traces(broker, "customer") == [WON, "0065g0000000002AAA"]
    assert broker.count("invoice") == 1
    assert queue_lists(redis_client) == 0


def test_the_receiver_waits_for_confirms_as_long_as_its_setting_says(
        redis_url, redis_client, broker: Broker, amqp_url: str):
    """``O2C_AMQP_CONFIRM_TIMEOUT_S`` (the subject, 0.5 s here) bounds the wait for a broker
    that stops answering: 503, no mark, and the resend is enqueued once it answers again."""
    proxy = TcpProxy(amqp_port(amqp_url))
    settings = load_settings(redis_url=redis_url, broker_url=via(amqp_url, proxy.port),
                             webhook_token=TOKEN, salesforce_org_ids=[soapmsg.ORG_ID],
                             erp_webhook_secret=ERP_SECRET, amqp_confirm_timeout_s=0.5)
    try:
        with served(settings, redis_client) as url:
            assert acked(post(url, soapmsg.won_message([1])))
            proxy.freeze()
            started = time.monotonic()
            late = post(url, soapmsg.won_message([2]))
            assert late.status_code == 503
            assert 0.5 <= time.monotonic() - started < 3
            assert marked(redis_client, 2) == [False]
            proxy.restore()
            assert acked(post(url, soapmsg.won_message([2])))
    finally:
        proxy.close()
    assert traces(broker, "customer")[-1] == "0065g0000000002AAA"
    assert queue_lists(redis_client) == 0


@pytest.mark.slow
def test_redis_refusing_after_the_confirm_is_503_and_the_resend_publishes_again(
        private_redis: RedisHandle, amqp_url: str, broker: Broker):  # noqa: F811
    client = redis.Redis.from_url(private_redis.url)
    with served(settings_on(private_redis.url, amqp_url), client) as url:
        with out_of_memory(client):
            # The guard's read passes, the publish is confirmed, the marks are refused.
            refused = post(url, soapmsg.won_message([1]))
            assert refused.status_code == 503 and b"<Ack>" not in refused.content
            assert broker.count("customer") == 1
            assert marked(client, 1) == [False]
            assert post(url, soapmsg.won_message([1])).status_code == 503
            assert broker.count("customer") == 2
        assert acked(post(url, soapmsg.won_message([1])))
        assert acked(post(url, soapmsg.won_message([1])))  # now a duplicate: nothing more
    assert marked(client, 1) == [True]
    # Three copies of one notification, each a duplicate the idempotent chain absorbs; the
    # marked one is the last, and nothing was hidden.
    assert traces(broker, "customer") == [WON, WON, WON]
    assert queue_lists(client) == 0


@pytest.mark.slow
def test_under_gunicorn_as_shipped(redis_url: str, redis_client: redis.Redis, amqp_url: str,
                                   broker: Broker):
    """The Procfile's receiver (gevent workers): py-amqp on gevent's sockets."""
    server = Gunicorn(redis_url, workers=2, env={"O2C_BROKER_URL": amqp_url})
    try:
        answers = [server.post(soapmsg.won_message([n])) for n in (1, 2, 3, 1, 2, 3)]
    finally:
        output = server.stop()
    assert all(acked(a) for a in answers), output
    assert sorted(traces(broker, "customer")) == [WON, "0065g0000000002AAA",
                                                  "0065g0000000003AAA"]
    assert marked(redis_client, 1, 2, 3) == [True, True, True]
    assert queue_lists(redis_client) == 0
