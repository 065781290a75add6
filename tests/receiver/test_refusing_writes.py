"""Redis up but refusing writes (OOM, READONLY after a failover, MISCONF) answers 503, so the
sender resends: a SOAP fault for Salesforce, JSON for the ERP; nothing is acknowledged and
nothing half-written hides the resend."""

from __future__ import annotations

import json

import pytest
import redis

from config import load_settings
from o2c_workers import app as celery_app
from o2c_workers import keys
from o2c_workers.receiver.app import Receiver
from o2c_workers.receiver.soap import ACK
from tests import soapmsg
from tests.receiver.test_erp_events import SECRET, event
from tests.receiver.test_erp_events import post as post_event
from tests.receiver.test_failures import assert_fault, post
from tests.refusing import misconf, out_of_memory, private_redis, read_only  # noqa: F401

pytestmark = pytest.mark.slow


def test_every_refusal_is_503_and_the_resend_gets_through(settings, private_redis) -> None:  # noqa: F811
    client = redis.Redis.from_url(private_redis.url)
    configured = load_settings(**{**settings.model_dump(), "redis_url": private_redis.url,
                                  "erp_webhook_secret": SECRET})
    receiver = Receiver(configured, redis_client=client, celery_app=celery_app)
    message, erp_event = soapmsg.won_message([1]), event(po_no="0065g00000AbCdE")
    for refusal in (out_of_memory(client), misconf(client, private_redis), read_only(client)):
        with refusal:
            body = assert_fault(post(receiver, message), 503, "soapenv:Server")
            assert b"resend later" in body
            status, _, answer = post_event(receiver, erp_event)
            assert status == 503 and "error" in json.loads(answer)
        assert not client.exists(keys.dedupe_sf("o2c", soapmsg.notification_id(1)))
        assert client.llen("customer") == 0 and client.llen("invoice") == 0
    status, _, ack = post(receiver, message)
    assert (status, ack) == (200, ACK)
    assert post_event(receiver, erp_event)[0] == 200
    assert client.llen("customer") == 1 and client.llen("invoice") == 1
    client.close()
