"""Outbound messages: Salesforce's wire format, retries until a real Ack, drops, batches."""

from __future__ import annotations

import base64
import itertools
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element

import pytest
import requests
from defusedxml.ElementTree import fromstring

from o2c_workers.sandbox.salesforce import SalesforceServer
from o2c_workers.sandbox.world import World, generate_world
from tests.plugins.sandbox import ACK, SoapReceiver, client_credentials

ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUT = "http://soap.sforce.com/2005/09/outbound"
SF = "urn:sobject.enterprise.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

Factory = Callable[..., SalesforceServer]


def _notifications(body: bytes) -> Element:
    root = fromstring(body, forbid_dtd=True)
    node = root.find(f"{{{ENV}}}Body/{{{OUT}}}notifications")
    assert node is not None
    return node


def _notes(body: bytes) -> list[tuple[str, dict[str, str], Element]]:
    """(Notification Id, sObject fields by local name, the sObject element) per notification."""
    out = []
    for note in _notifications(body).findall(f"{{{OUT}}}Notification"):
        sobject = note.find(f"{{{OUT}}}sObject")
        assert sobject is not None
        fields = {child.tag.removeprefix(f"{{{SF}}}"): child.text or "" for child in sobject}
        out.append((note.findtext(f"{{{OUT}}}Id") or "", fields, sobject))
    return out


def _win(handle: SalesforceServer, ids: Any) -> dict[str, Any]:
    answer = handle.session().post(f"{handle.url}/_sandbox/opportunities/win", json={"ids": ids},
                                   timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _deliveries(handle: SalesforceServer) -> dict[str, Any]:
    return dict(handle.session().get(f"{handle.url}/_sandbox/deliveries", timeout=5).json())


def test_message_is_salesforce_wire_format(salesforce_factory: Factory, world: World,
                                           soap_receiver: SoapReceiver) -> None:
    handle = salesforce_factory(outbound_url=soap_receiver.url)
    opp = world.of("Opportunity")[0]
    answer = handle.session().post(f"{handle.url}/_sandbox/opportunities/{opp['Id']}/win",
                                   timeout=5)
    assert answer.json() == {"won": [opp["Id"]], "already_won": []}
    assert handle.simulator.sender.wait_idle(5)
    [message] = soap_receiver.received
    assert message.headers["Content-Type"] == "text/xml; charset=UTF-8"
    assert message.headers["Soapaction"] == '""'
    assert b"\n" not in message.body
    head = _notifications(message.body)
    assert head.findtext(f"{{{OUT}}}OrganizationId") == world.org_id
    assert re.fullmatch(r"04k\w{15}", head.findtext(f"{{{OUT}}}ActionId") or "")
    session = head.find(f"{{{OUT}}}SessionId")
    assert session is not None and session.get(f"{{{XSI}}}nil") == "true"
    assert head.findtext(f"{{{OUT}}}EnterpriseUrl", "").startswith(f"{handle.url}/services/Soap/c/")
    assert head.findtext(f"{{{OUT}}}PartnerUrl", "").startswith(f"{handle.url}/services/Soap/u/")
    [(note_id, fields, sobject)] = _notes(message.body)
    assert re.fullmatch(r"04l\w{15}", note_id)
    assert sobject.get(f"{{{XSI}}}type") == "sf:Opportunity"
    declared = f'<sObject xsi:type="sf:Opportunity" xmlns:sf="{SF}">'.encode()
    assert declared in message.body
    assert next(iter(fields)) == "Id" and fields["Id"] == opp["Id"]
    assert fields["StageName"] == "Closed Won" and fields["IsWon"] == "true"
    assert fields["Probability"] == "100.0"
    assert re.fullmatch(r"\d+\.\d+", fields["Amount"])
    assert Decimal(fields["Amount"]) == opp["Amount"]
    assert fields["CloseDate"] == opp["CloseDate"].isoformat()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fields["LastModifiedDate"])
    assert datetime.fromisoformat(fields["LastModifiedDate"].replace("Z", "+00:00"))
    assert "Description" not in fields and "ERP_Order_Number__c" not in fields
    assert set(fields) <= set(handle.simulator.config.outbound_fields["Opportunity"])
    assert _win(handle, [opp["Id"]]) == {"won": [], "already_won": [opp["Id"]]}


def test_pretty_printed_messages_parse_the_same(salesforce_factory: Factory, world: World,
                                                soap_receiver: SoapReceiver) -> None:
    handle = salesforce_factory(outbound_url=soap_receiver.url, pretty=True)
    _win(handle, [world.of("Opportunity")[0]["Id"]])
    assert handle.simulator.sender.wait_idle(5)
    body = soap_receiver.received[0].body
    assert body.count(b"\n") > 10
    assert _notes(body)[0][1]["StageName"] == "Closed Won"


def test_retries_until_a_real_ack(salesforce_factory: Factory, world: World,
                                  soap_receiver: SoapReceiver) -> None:
    nack = ACK.replace(b"<Ack>true</Ack>", b"<Ack>false</Ack>")
    soap_receiver.script = [(500, b"boom"), (200, b'{"ok": true}'), (200, nack),
                            (200, b"<Ack>true</Ack>")]
    # 15 s, 30 s, 60 s, 120 s of Salesforce's schedule become 0.15 s … 1.2 s here.
    handle = salesforce_factory(outbound_url=soap_receiver.url, time_scale=100)
    _win(handle, [world.of("Opportunity")[0]["Id"]])
    assert handle.simulator.sender.wait_idle(10)
    log = _deliveries(handle)
    attempts = log["attempts_log"]
    assert [(a["status"], a["acked"]) for a in attempts] == [
        (500, False), (200, False), (200, False), (200, False), (200, True)]
    assert len({tuple(a["notification_ids"]) for a in attempts}) == 1
    assert attempts[0]["error"] == "HTTP 500"
    assert attempts[1]["error"] == "HTTP 200 without a SOAP Ack"
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4, 5]
    stamps = [datetime.fromisoformat(a["at"]).timestamp() for a in attempts]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps[0] >= 0.14
    assert all(later > earlier for earlier, later in itertools.pairwise(gaps))
    assert log["acked"] == 1 and log["pending"] == 0 and log["dropped"] == 0


def test_dropped_after_the_scaled_window(salesforce_factory: Factory, world: World,
                                         soap_receiver: SoapReceiver) -> None:
    soap_receiver.script = [(503, b"down")] * 1000
    handle = salesforce_factory(outbound_url=soap_receiver.url, time_scale=86_400 / 0.4)
    _win(handle, [world.of("Opportunity")[0]["Id"]])
    deadline = time.monotonic() + 5
    while _deliveries(handle)["dropped"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    log = _deliveries(handle)
    assert log["dropped"] == 1 and log["pending"] == 0 and log["acked"] == 0
    assert log["attempts_log"][-1]["dropped"] is True
    assert sum(1 for a in log["attempts_log"] if a["status"] == 503) >= 2
    assert handle.simulator.sender.wait_idle(1)


def test_unreachable_endpoint_is_retried(salesforce_factory: Factory, world: World) -> None:
    handle = salesforce_factory(outbound_url="http://127.0.0.1:9/closed?token=s3cret",
                                time_scale=1000, outbound_timeout_s=1)
    _win(handle, [world.of("Opportunity")[0]["Id"]])
    time.sleep(0.3)
    log = _deliveries(handle)
    assert log["pending"] == 1 and len(log["attempts_log"]) >= 2
    assert log["attempts_log"][0]["error"].startswith("ConnectionError")
    assert "s3cret" not in str(log)


def test_batches_hold_at_most_100(salesforce_factory: Factory,
                                  soap_receiver: SoapReceiver) -> None:
    big = generate_world(seed=5, accounts=20, opportunities=230)
    handle = salesforce_factory(on=big)
    assert len(_win(handle, "all")["won"]) == 230
    handle.session().post(f"{handle.url}/_sandbox/outbound", json={"url": soap_receiver.url},
                          timeout=5)
    assert handle.simulator.sender.wait_idle(10)
    sizes = [len(_notes(m.body)) for m in soap_receiver.received]
    assert sorted(sizes, reverse=True) == [100, 100, 30]
    ids = [note[0] for m in soap_receiver.received for note in _notes(m.body)]
    assert len(set(ids)) == 230


def test_configured_batch_size(salesforce_factory: Factory, world: World,
                               soap_receiver: SoapReceiver) -> None:
    handle = salesforce_factory(batch_size=7)
    _win(handle, "all")
    handle.simulator.sender.set_endpoint(soap_receiver.url)
    assert handle.simulator.sender.wait_idle(5)
    assert sorted(len(_notes(m.body)) for m in soap_receiver.received) == [2, 7, 7, 7, 7]


def test_duplicates_after_ack(salesforce_factory: Factory, world: World,
                              soap_receiver: SoapReceiver) -> None:
    handle = salesforce_factory(outbound_url=soap_receiver.url, duplicate_rate=1.0)
    _win(handle, world.opportunity_ids[:5])
    assert handle.simulator.sender.wait_idle(5)
    counts = Counter(note[0] for m in soap_receiver.received for note in _notes(m.body))
    assert len(counts) == 5 and set(counts.values()) == {2}
    log = _deliveries(handle)
    assert log["duplicates"] == 5 and any(a["duplicate"] for a in log["attempts_log"])


def test_reorder_delivers_out_of_order(salesforce_factory: Factory, world: World,
                                       soap_receiver: SoapReceiver) -> None:
    handle = salesforce_factory(reorder=True, batch_size=1)
    won = _win(handle, "all")["won"]
    handle.simulator.sender.set_endpoint(soap_receiver.url)
    assert handle.simulator.sender.wait_idle(5)
    delivered = [_notes(m.body)[0][1]["Id"] for m in soap_receiver.received]
    assert sorted(delivered) == sorted(won) and delivered != won


def test_basic_auth_and_token_in_the_url(salesforce_factory: Factory, world: World,
                                         soap_receiver: SoapReceiver) -> None:
    url = soap_receiver.url.replace("http://", "http://o2c:p%40ss@") + "?token=abc123"
    handle = salesforce_factory(outbound_url=url)
    _win(handle, [world.of("Opportunity")[0]["Id"]])
    assert handle.simulator.sender.wait_idle(5)
    [message] = soap_receiver.received
    assert message.query == "token=abc123" and message.path == "/outbound"
    assert message.headers["Authorization"] == "Basic " + base64.b64encode(b"o2c:p@ss").decode()
    assert "p@ss" not in str(_deliveries(handle)) and "abc123" not in str(_deliveries(handle))


def test_session_id_when_configured_is_a_live_token(salesforce_factory: Factory, world: World,
                                                    soap_receiver: SoapReceiver) -> None:
    handle = salesforce_factory(outbound_url=soap_receiver.url, send_session_id=True)
    _win(handle, [world.of("Opportunity")[0]["Id"]])
    assert handle.simulator.sender.wait_idle(5)
    session_id = _notifications(soap_receiver.received[0].body).findtext(f"{{{OUT}}}SessionId")
    assert session_id
    answer = handle.session().get(f"{handle.url}/services/data/v60.0/limits",
                                  headers={"Authorization": f"Bearer {session_id}"}, timeout=5)
    assert answer.status_code == 200


def test_rest_changes_trigger_their_own_definitions(salesforce_factory: Factory, world: World,
                                                    soap_receiver: SoapReceiver,
                                                    ) -> None:
    handle = salesforce_factory(outbound_url=soap_receiver.url)
    http: requests.Session = handle.session()
    http.headers["Authorization"] = f"Bearer {client_credentials(handle)}"
    opp, account = world.of("Opportunity")[0], world.of("Account")[0]
    base = f"{handle.url}/services/data/v60.0/sobjects"
    http.patch(f"{base}/Opportunity/{opp['Id']}", json={"StageName": "Closed Won"}, timeout=5)
    http.patch(f"{base}/Opportunity/{opp['Id']}", json={"StageName": "Closed Won"}, timeout=5)
    http.patch(f"{base}/Opportunity/{opp['Id']}", json={"ERP_Order_Number__c": "SO-1"}, timeout=5)
    # A write-back of an ERP field is not a change the Account definition watches.
    http.patch(f"{base}/Account/{account['Id']}", json={"ERP_Customer_Number__c": "C-1"},
               timeout=5)
    http.patch(f"{base}/Account/{account['Id']}", json={"BillingCity": "Lyon & Co"}, timeout=5)
    handle.session().post(f"{handle.url}/_sandbox/accounts/{account['Id']}/change",
                          json={"Phone": "+33 1 00 00 00 00"}, timeout=5)
    assert handle.simulator.sender.wait_idle(5)
    kinds = [(sobject.get(f"{{{XSI}}}type"),
              _notifications(m.body).findtext(f"{{{OUT}}}ActionId"))
             for m in soap_receiver.received for _, _, sobject in _notes(m.body)]
    assert sorted(k for k, _ in kinds) == ["sf:Account", "sf:Account", "sf:Opportunity"]
    assert len({action for _, action in kinds}) == 2
    cities = [fields.get("BillingCity") for m in soap_receiver.received
              for _, fields, _ in _notes(m.body)]
    assert "Lyon & Co" in cities


@pytest.mark.parametrize("body", [{"ids": 5}, {"nope": 1}])
def test_win_refuses_bad_bodies(salesforce: SalesforceServer, body: dict[str, Any]) -> None:
    answer = salesforce.session().post(f"{salesforce.url}/_sandbox/opportunities/win", json=body,
                                       timeout=5)
    assert answer.status_code == 400
