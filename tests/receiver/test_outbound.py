"""The receiver as a WSGI callable against real Redis: the outbound message contract."""

from __future__ import annotations

import json

from o2c_workers import keys
from o2c_workers.dlq import DeadLetterStore, Status
from o2c_workers.receiver.app import Receiver
from o2c_workers.receiver.soap import ACK
from o2c_workers.services import shared_reads
from o2c_workers.services.shared_reads import ReadGroup
from tests import soapmsg
from tests.helpers import call_wsgi, queued
from tests.receiver.conftest import TOKEN

Q = f"token={TOKEN}"


def post(receiver: Receiver, body: bytes, *, query: str = Q, **kw):
    return call_wsgi(receiver, "POST", "/salesforce/outbound", body, query=query, **kw)


def test_single_won_opportunity_is_enqueued_as_the_o2c_chain(receiver, redis_client):
    status, headers, body = post(receiver, soapmsg.won_message([1]))
    assert status == 200
    assert body == ACK
    assert headers["Content-Type"].startswith("text/xml")
    [message] = queued(redis_client, "customer")
    assert message["headers"]["task"] == "o2c.customer.ensure_customer"
    assert message["headers"]["trace_key"] == "0065g0000000001AAA"
    [payload] = message["args"]
    assert payload["notification_id"] == soapmsg.notification_id(1)
    assert payload["record"]["Amount"] == "45000.0"
    assert payload["record"]["Id"] == "0065g0000000001AAA"
    chain = [sig["task"] for sig in reversed(message["embed"]["chain"])]
    assert chain == ["o2c.pricing.validate_order", "o2c.order.submit_order",
                     "o2c.order.write_back"]
    assert message["properties"]["delivery_info"]["routing_key"] == "customer"
    # Alone in its message: its first step reads it alone.
    assert shared_reads.HEADER not in message["headers"]


def test_hundred_notifications_in_one_message(receiver, redis_client):
    status, _, _ = post(receiver, soapmsg.won_message(range(100)))
    assert status == 200
    messages = queued(redis_client, "customer")
    assert len(messages) == 100
    assert {m["args"][0]["notification_id"] for m in messages} == {
        soapmsg.notification_id(i) for i in range(100)}


def test_the_won_opportunities_of_one_message_are_read_in_groups(receiver, redis_client):
    status, _, _ = post(receiver, soapmsg.won_message(range(100)))
    assert status == 200
    messages = queued(redis_client, "customer")
    groups = [ReadGroup.from_header(m["headers"][shared_reads.HEADER]) for m in messages]
    ids = [m["headers"]["trace_key"] for m in messages]
    assert groups[0] is not None and groups[-1] is not None
    assert groups[0].ids == tuple(ids[:50]) and groups[-1].ids == tuple(ids[50:])
    assert groups[0].key != groups[-1].key
    assert all(g == groups[0] for g in groups[:50]) and all(g == groups[-1] for g in groups[50:])
    # The group is a header of the first task only: the chain's context does not carry it.
    assert all(shared_reads.HEADER not in json.dumps(m["args"]) for m in messages)


def test_only_won_opportunities_are_read_together(receiver, redis_client):
    body = soapmsg.envelope([
        soapmsg.notification(soapmsg.notification_id(1), "Opportunity", soapmsg.opportunity(1)),
        soapmsg.notification(soapmsg.notification_id(2), "Opportunity",
                             soapmsg.opportunity(2, stage="Closed Lost"))])
    assert post(receiver, body)[0] == 200
    [won] = queued(redis_client, "customer")
    [lost] = queued(redis_client, "order")
    assert shared_reads.HEADER not in won["headers"]
    assert shared_reads.HEADER not in lost["headers"]


def test_more_than_hundred_notifications_is_refused(receiver, redis_client):
    status, _, body = post(receiver, soapmsg.won_message(range(101)))
    assert status == 400
    assert b"at most 100" in body
    assert redis_client.llen("customer") == 0


def test_pretty_printed_and_other_prefixes_parse_alike(receiver, redis_client):
    one_line = soapmsg.won_message([1])
    pretty = soapmsg.envelope(
        [soapmsg.notification(soapmsg.notification_id(2), "Opportunity",
                              soapmsg.opportunity(2), sf_prefix="ns9")],
        pretty=True, env_prefix="s")
    assert post(receiver, one_line)[0] == 200
    assert post(receiver, pretty)[0] == 200
    first, second = queued(redis_client, "customer")
    assert first["args"][0]["record"]["StageName"] == second["args"][0]["record"]["StageName"]
    assert second["headers"]["trace_key"] == "0065g0000000002AAA"


def test_omitted_null_fields_are_not_errors(receiver, redis_client):
    fields = {"Id": "0065g00000AAAAA", "StageName": "Closed Won"}
    body = soapmsg.envelope([soapmsg.notification("04l5g0000000001", "Opportunity", fields)])
    assert post(receiver, body)[0] == 200
    [message] = queued(redis_client, "customer")
    assert message["args"][0]["record"] == {"Id": "0065g00000AAAAAAA5", "StageName": "Closed Won"}


def test_account_change_goes_to_the_customer_queue(receiver, redis_client):
    body = soapmsg.envelope([soapmsg.notification(
        "04l5g0000000009", "Account",
        {"Id": "0015g00000AbCdE", "Name": "Acme", "BillingCountry": "Germany"})])
    assert post(receiver, body)[0] == 200
    [message] = queued(redis_client, "customer")
    assert message["headers"]["task"] == "o2c.customer.sync_account"
    assert message["embed"]["chain"] is None


def test_same_notification_twice_is_enqueued_once(receiver, redis_client):
    body = soapmsg.won_message([1, 2])
    assert post(receiver, body)[0] == 200
    status, _, ack = post(receiver, body)
    assert (status, ack) == (200, ACK)
    assert redis_client.llen("customer") == 2
    assert redis_client.ttl(keys.dedupe_sf("o2c", soapmsg.notification_id(1))) > 47 * 3600


def test_duplicate_inside_one_message_is_enqueued_once(receiver, redis_client):
    n = soapmsg.notification(soapmsg.notification_id(5), "Opportunity", soapmsg.opportunity(5))
    assert post(receiver, soapmsg.envelope([n, n]))[0] == 200
    assert redis_client.llen("customer") == 1


def test_invalid_record_is_acknowledged_and_dead_lettered(receiver, redis_client):
    fields = soapmsg.opportunity(7, Amount="lots")
    body = soapmsg.envelope([soapmsg.notification(soapmsg.notification_id(7), "Opportunity",
                                                  fields)])
    status, _, ack = post(receiver, body)
    assert (status, ack) == (200, ACK)
    assert redis_client.llen("customer") == 0
    store = DeadLetterStore(redis_client, prefix="o2c")
    [entry_id] = store.ids(category="invalid_payload")
    entry = store.get(entry_id)
    assert entry.trace_key == "0065g0000000007AAA"
    assert "Amount" in entry.message
    assert "<sf:Amount>lots</sf:Amount>" in entry.payload["raw"].replace("ns0:", "sf:") or \
        "lots" in entry.payload["raw"]
    assert entry.status is Status.OPEN
    # Salesforce resending the same notification does not file it twice.
    assert post(receiver, body)[0] == 200
    assert len(store.ids(category="invalid_payload")) == 1


def test_route_required_field_missing_is_invalid_payload(receiver, redis_client):
    body = soapmsg.envelope([soapmsg.notification(
        "04l5g0000000011", "Account", {"Name": "No Id"})])
    assert post(receiver, body)[0] == 200
    store = DeadLetterStore(redis_client, prefix="o2c")
    [entry] = store.many(store.ids(category="invalid_payload"))
    assert entry.trace_key == "notification:04l5g0000000011"


def test_unrouted_type_is_acknowledged_and_dead_lettered(receiver, redis_client):
    body = soapmsg.envelope([soapmsg.notification(
        "04l5g0000000010", "Contact", {"Id": "0035g00000XyZzY", "LastName": "Doe"})])
    assert post(receiver, body)[0] == 200
    store = DeadLetterStore(redis_client, prefix="o2c")
    [entry] = store.many(store.ids(category="unrouted"))
    assert entry.message == "no route for Contact"
    assert entry.domain == "receiver"


def test_opportunity_in_another_stage_goes_to_its_order(receiver, redis_client):
    body = soapmsg.envelope([soapmsg.notification(
        soapmsg.notification_id(3), "Opportunity", soapmsg.opportunity(3, stage="Closed Lost"))])
    assert post(receiver, body)[0] == 200
    [message] = queued(redis_client, "order")
    assert message["headers"]["task"] == "o2c.order.follow_opportunity"
    assert message["args"][0]["route"] == "opportunity_changed"
    assert redis_client.llen("customer") == 0
    assert DeadLetterStore(redis_client, prefix="o2c").count() == 0


def test_received_is_on_the_timeline(receiver, redis_client):
    post(receiver, soapmsg.won_message([1]))
    [raw] = redis_client.lrange(keys.timeline("o2c", "0065g0000000001AAA"), 0, -1)
    event = json.loads(raw)
    assert event["event"] == "received"
    assert event["notification_id"] == soapmsg.notification_id(1)


def test_fifteen_and_eighteen_character_org_ids_match(settings, redis_client):
    from o2c_workers import app as celery_app

    fifteen = settings.model_copy(update={"salesforce_org_ids": [soapmsg.ORG_ID[:15]]})
    receiver = Receiver(fifteen, redis_client=redis_client, celery_app=celery_app)
    assert post(receiver, soapmsg.won_message([1]))[0] == 200
    assert post(receiver, soapmsg.won_message([2], org_id=soapmsg.ORG_ID[:15]))[0] == 200
    assert redis_client.llen("customer") == 2


def test_basic_auth_password_is_accepted(receiver, redis_client):
    import base64

    auth = "Basic " + base64.b64encode(f"salesforce:{TOKEN}".encode()).decode()
    status, _, _ = post(receiver, soapmsg.won_message([1]), query="",
                        headers={"Authorization": auth})
    assert status == 200


def test_session_id_is_not_stored(receiver, redis_client):
    body = soapmsg.envelope([soapmsg.notification(
        "04l5g0000000012", "Contact", {"Id": "0035g00000XyZzY"})],
        session_id="00D5g000004ZcXQ!AQ0AQSecretSessionValue")
    assert post(receiver, body)[0] == 200
    dump = b"".join(redis_client.dump(k) or b"" for k in redis_client.keys("*"))
    assert b"SecretSessionValue" not in dump


def test_personal_data_never_reaches_a_dead_letter_in_clear(receiver, redis_client):
    body = soapmsg.envelope([soapmsg.notification("04l5g0000000013", "Contact", {
        "Id": "0035g00000XyZzY", "LastName": "Doe", "Email": "jane.doe@example.com",
        "Phone": "+1 415 555 0100"})])
    assert post(receiver, body)[0] == 200
    store = DeadLetterStore(redis_client, prefix="o2c")
    [entry] = store.many(store.ids(category="unrouted"))
    assert "0035g00000XyZzY" in entry.payload["raw"]
    for value in ("Doe", "jane.doe@example.com", "555 0100"):
        assert value not in entry.payload["raw"]
    dump = b"".join(redis_client.dump(k) or b"" for k in redis_client.keys("*"))
    assert b"jane.doe@example.com" not in dump
    assert b"555 0100" not in dump
