"""The simulated org follows an opportunity's life: lost, re-opened and edited as a user
would, with Salesforce's computed totals, and an outbound message on every change of stage
and every change of what a won opportunity was won with (never on a write-back)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import requests

from o2c_workers.sandbox.salesforce import SalesforceServer
from o2c_workers.sandbox.world import World
from tests.plugins.sandbox import SoapReceiver, client_credentials
from tests.sandbox.test_salesforce_outbound import _notes

Factory = Callable[..., SalesforceServer]


@pytest.fixture
def org(salesforce_factory: Factory, soap_receiver: SoapReceiver) -> SalesforceServer:
    return salesforce_factory(outbound_url=soap_receiver.url)


def act(handle: SalesforceServer, opp: str, action: str, body: Any = None) -> requests.Response:
    return handle.session().post(f"{handle.url}/_sandbox/opportunities/{opp}/{action}",
                                 json=body, timeout=5)


def stages_sent(handle: SalesforceServer, receiver: SoapReceiver) -> list[str]:
    assert handle.simulator.sender.wait_idle(5)
    return [fields["StageName"] for message in receiver.received
            for _, fields, _ in _notes(message.body)]


def test_every_stage_change_and_every_edit_of_a_won_one_is_sent(org, soap_receiver, world):
    opp = world.of("Opportunity")[0]["Id"]
    assert act(org, opp, "win").ok
    edited = act(org, opp, "lines", [{"line": 1, "Quantity": 7}]).json()
    assert act(org, opp, "lose").json() == {"id": opp, "before": "Closed Won",
                                            "stage": "Closed Lost"}
    # An edit of a lost opportunity is not sent; a re-open is.
    assert act(org, opp, "lines", [{"line": 1, "Quantity": 8}]).ok
    assert act(org, opp, "reopen").json()["stage"] == "Negotiation/Review"
    assert act(org, opp, "reopen", {"stage": "Qualification"}).ok
    assert stages_sent(org, soap_receiver) == [
        "Closed Won", "Closed Won", "Closed Lost", "Negotiation/Review", "Qualification"]
    others = sum(line["Quantity"] for line in world.line_items(opp)[1:])
    assert Decimal(str(edited["TotalOpportunityQuantity"])) == 7 + others


def test_a_line_edit_recomputes_the_totals_as_salesforce_does(org, world):
    opp = world.of("Opportunity")[1]["Id"]
    lines = org.session().get(f"{org.url}/_sandbox/opportunities/{opp}/lines", timeout=5).json()
    price = Decimal(str(lines[0]["UnitPrice"]))
    edited = act(org, opp, "lines", [{"line": 1, "Quantity": 25, "Discount": 24}]).json()
    [line] = edited["lines"]
    assert Decimal(str(line["TotalPrice"])) == (25 * price * Decimal("0.76")).quantize(
        Decimal("0.01"))
    others = sum(Decimal(str(row["TotalPrice"])) for row in lines[1:])
    assert Decimal(str(edited["Amount"])) == Decimal(str(line["TotalPrice"])) + others
    assert Decimal(str(edited["TotalOpportunityQuantity"])) == 25 + sum(
        Decimal(str(row["Quantity"])) for row in lines[1:])


def test_a_rest_edit_of_a_won_opportunitys_line_is_sent_and_a_write_back_is_not(
        org, soap_receiver, world: World):
    opp = world.of("Opportunity")[2]["Id"]
    http = org.session()
    http.headers["Authorization"] = f"Bearer {client_credentials(org)}"
    base = f"{org.url}/services/data/v60.0/sobjects"
    act(org, opp, "win")
    [line, *_] = world.line_items(opp)
    assert http.patch(f"{base}/OpportunityLineItem/{line['Id']}",
                      json={"Quantity": 99}, timeout=5).status_code == 204
    http.patch(f"{base}/Opportunity/{opp}", json={"ERP_Order_Number__c": "SO-1",
                                                  "ERP_Order_Status__c": "To Bill"}, timeout=5)
    assert stages_sent(org, soap_receiver) == ["Closed Won", "Closed Won"]
    record = http.get(f"{base}/OpportunityLineItem/{line['Id']}", timeout=5).json()
    assert Decimal(str(record["TotalPrice"])) != line["TotalPrice"]


@pytest.mark.parametrize(("action", "body", "status", "code"), [
    ("lines", [{"line": 9, "Quantity": 2}], 404, "NOT_FOUND"),
    ("lines", [{"line": 1, "Name": "x"}], 400, "INVALID_FIELD"),
    ("lines", [{"line": 1, "Quantity": -1}], 400, "NUMBER_OUTSIDE_VALID_RANGE"),
    ("lines", [{"line": 1, "Discount": "lots"}], 400, "NUMBER_OUTSIDE_VALID_RANGE"),
    ("lines", {"line": 1}, 400, "JSON_PARSER_ERROR"),
    ("reopen", {"stage": "Closed Won"}, 400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    ("promote", None, 404, "NOT_FOUND"),
])
def test_a_bad_request_is_refused_and_changes_nothing(org, soap_receiver, world, action, body,
                                                      status, code):
    opp = world.of("Opportunity")[3]["Id"]
    before = org.simulator.store.get("Opportunity", opp)
    lines = [org.simulator.store.get("OpportunityLineItem", line["Id"])
             for line in world.line_items(opp)]
    answer = act(org, opp, action, body)
    assert answer.status_code == status
    assert answer.json()[0]["errorCode"] == code
    assert org.simulator.store.get("Opportunity", opp) == before
    assert [org.simulator.store.get("OpportunityLineItem", line["Id"])
            for line in world.line_items(opp)] == lines
    assert stages_sent(org, soap_receiver) == []
