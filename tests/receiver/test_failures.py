"""Every failure answer of the receiver: a SOAP fault with the right status, nothing changed."""

from __future__ import annotations

import io
import json

import pytest

from o2c_workers import app as celery_app
from o2c_workers import keys
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.receiver.app import Receiver
from o2c_workers.receiver.soap import ACK, MAX_DEPTH
from o2c_workers.runtime import connect
from tests import soapmsg
from tests.helpers import call_wsgi, queued
from tests.receiver.conftest import TOKEN

Q = f"token={TOKEN}"

DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Envelope [<!ELEMENT Envelope ANY>]>
<Envelope/>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">&xxe;</soapenv:Envelope>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>"""


def post(receiver, body: bytes, *, query: str = Q, **kw):
    return call_wsgi(receiver, "POST", "/salesforce/outbound", body, query=query, **kw)


def assert_fault(response, status: int, code: str = "soapenv:Client") -> bytes:
    got, headers, body = response
    assert got == status, body
    assert headers["Content-Type"].startswith("text/xml")
    assert b"<soapenv:Fault>" in body
    assert f"<faultcode>{code}</faultcode>".encode() in body
    assert b"<Ack>" not in body
    return body


@pytest.mark.parametrize("body", [
    b"<not-closed", b"", b'{"json": true}', b"<a><b></a>",
    b'<Envelope xmlns="http://example.com/not-soap"/>',
])
def test_malformed_or_foreign_xml_is_400(receiver, redis_client, body):
    assert_fault(post(receiver, body), 400)
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("body", [DTD, EXTERNAL_ENTITY, BILLION_LAUGHS])
def test_dtds_entities_and_bombs_are_refused(receiver, redis_client, body):
    fault = assert_fault(post(receiver, body), 400)
    assert b"refused XML construct" in fault or b"malformed" in fault
    assert redis_client.dbsize() == 0


def nested(depth: int, *, where: str, **fields: str) -> bytes:
    """A won-opportunity message whose elements nest ``depth`` levels deep in all: in an
    sObject field (Envelope, Body, notifications, Notification, sObject are 5) or in a
    SOAP header (Envelope, Header are 2)."""
    body = soapmsg.envelope([soapmsg.notification(soapmsg.notification_id(1), "Opportunity",
                                                  soapmsg.opportunity(1, **fields))]).decode()
    if where == "field":
        deep = "<sf:Deep>" * (depth - 5) + "x" + "</sf:Deep>" * (depth - 5)
        body = body.replace("</sObject>", deep + "</sObject>")
    else:
        deep = "<h>" * (depth - 2) + "</h>" * (depth - 2)
        body = body.replace("<soapenv:Body>", f"<soapenv:Header>{deep}</soapenv:Header>"
                                              "<soapenv:Body>")
    return body.encode()


@pytest.mark.parametrize(("where", "depth"), [
    ("field", MAX_DEPTH + 1), ("field", 5_000), ("header", MAX_DEPTH + 1), ("header", 100_000)])
def test_xml_nested_deeper_than_the_limit_is_400_and_changes_nothing(receiver, redis_client,
                                                                     where, depth):
    body = nested(depth, where=where)
    assert len(body) < receiver.settings.max_body_bytes
    fault = assert_fault(post(receiver, body), 400)
    assert f"elements nest more than {MAX_DEPTH} levels deep".encode() in fault
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("amount", ["45000.0", "lots"])
def test_xml_nested_as_deep_as_the_limit_is_taken(receiver, redis_client, amount):
    status, _, answer = post(receiver, nested(MAX_DEPTH, where="field", Amount=amount))
    assert (status, answer) == (200, ACK)
    store = DeadLetterStore(redis_client, prefix="o2c")
    # A valid one is enqueued; an invalid one is dead-lettered with its XML.
    assert (redis_client.llen("customer"), len(store.ids())) == (
        (1, 0) if amount == "45000.0" else (0, 1))


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_oversize_body_is_413_without_reading_it(receiver, redis_client):
    big = b"x" * (receiver.settings.max_body_bytes + 10)
    stream = CountingStream(big)
    from wsgiref.util import setup_testing_defaults

    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD="POST", PATH_INFO="/salesforce/outbound", QUERY_STRING=Q,
                   CONTENT_LENGTH=str(len(big)), **{"wsgi.input": stream})
    statuses = []
    body = b"".join(receiver(environ, lambda s, h: statuses.append(s)))
    assert statuses[0].startswith("413")
    assert b"exceeds the limit" in body
    assert stream.bytes_read == 0


def test_oversize_chunked_body_is_413_after_reading_one_byte_past_the_limit(receiver):
    limit = receiver.settings.max_body_bytes
    stream = CountingStream(b"x" * (limit * 3))
    from wsgiref.util import setup_testing_defaults

    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD="POST", PATH_INFO="/salesforce/outbound", QUERY_STRING=Q,
                   CONTENT_LENGTH="", **{"wsgi.input": stream})
    statuses = []
    b"".join(receiver(environ, lambda s, h: statuses.append(s)))
    assert statuses[0].startswith("413")
    assert stream.bytes_read == limit + 1


@pytest.mark.parametrize("query,headers", [
    ("", {}),
    ("token=wrong", {}),
    ("token=", {}),
    ("", {"Authorization": "Basic bm90OmJhc2U2NA=="}),  # not:base64
    ("", {"Authorization": "Bearer " + TOKEN}),
])
def test_missing_or_wrong_token_is_401(receiver, redis_client, query, headers):
    body = assert_fault(post(receiver, soapmsg.won_message([1]), query=query, headers=headers),
                        401)
    assert TOKEN.encode() not in body
    assert redis_client.llen("customer") == 0


def test_foreign_org_is_403(receiver, redis_client):
    assert_fault(post(receiver, soapmsg.won_message([1], org_id="00D000000000001AAA")), 403)
    assert_fault(post(receiver, soapmsg.won_message([1], org_id="not-an-id")), 403)
    assert redis_client.dbsize() == 0


def test_wrong_method_is_405(receiver):
    status, headers, body = call_wsgi(receiver, "GET", "/salesforce/outbound", query=Q)
    assert status == 405
    assert headers["Allow"] == "POST"
    assert b"<soapenv:Fault>" in body


def test_unknown_path_is_404(receiver):
    status, headers, _ = call_wsgi(receiver, "POST", "/nowhere", soapmsg.won_message([1]))
    assert status == 404
    assert headers["Content-Type"] == "application/json"


def test_redis_unreachable_is_503_and_no_ack(settings):
    dead = connect(f"redis://127.0.0.1:{free_port()}/0", retries=1)
    receiver = Receiver(settings, redis_client=dead, celery_app=celery_app)
    body = assert_fault(post(receiver, soapmsg.won_message([1])), 503, "soapenv:Server")
    assert b"resend later" in body
    status, _, body = call_wsgi(receiver, "GET", "/readyz")
    assert status == 503
    # On a Redis broker readiness is Redis's alone: no broker check, no broker field.
    assert set(json.loads(body)) == {"status", "redis"}


def test_failure_after_the_dedupe_check_loses_nothing(receiver, redis_client):
    """If the enqueue fails, no dedupe mark is left behind: the resend gets through."""
    redis_client.set("customer", "not a list")  # LPUSH on it fails with WRONGTYPE
    message = soapmsg.won_message([1, 2])
    assert_fault(post(receiver, message), 503, "soapenv:Server")
    assert not redis_client.exists(keys.dedupe_sf("o2c", soapmsg.notification_id(1)))
    assert not redis_client.exists(keys.timeline("o2c", "0065g0000000001AAA"))
    redis_client.delete("customer")
    status, _, ack = post(receiver, message)
    assert (status, ack) == (200, ACK)
    assert post(receiver, message)[0] == 200
    assert len(queued(redis_client, "customer")) == 2


def test_health_and_readiness(receiver):
    assert call_wsgi(receiver, "GET", "/healthz")[0] == 200
    status, _, body = call_wsgi(receiver, "GET", "/readyz")
    assert status == 200
    assert json.loads(body) == {"status": "ready"}
    assert receiver.routes["/readyz"]["GET"].__self__.broker is None


def test_receiver_refuses_to_start_without_token_or_orgs(redis_client, redis_url):
    from config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="O2C_WEBHOOK_TOKEN"):
        Receiver(load_settings(redis_url=redis_url, salesforce_org_ids=["00D5g000004ZcXQ"]),
                 redis_client=redis_client, celery_app=celery_app)
    with pytest.raises(ConfigError, match="O2C_SALESFORCE_ORG_IDS"):
        Receiver(load_settings(redis_url=redis_url, webhook_token="x"),
                 redis_client=redis_client, celery_app=celery_app)
