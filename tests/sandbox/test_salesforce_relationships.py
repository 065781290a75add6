"""SOQL with relationship fields, parent-to-child subqueries and ``IN`` lists in the
simulated org, answered in Salesforce's nesting: ``attributes`` on every record, a parent
under its relationship's name (or null), a child result with ``totalSize``, ``done``,
``records`` and ``nextRecordsUrl`` (or null when it found no row)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
import requests

from o2c_workers import sfid
from o2c_workers.sandbox.salesforce import SalesforceServer
from o2c_workers.sandbox.world import World
from tests.plugins.sandbox import client_credentials
from tests.salesforce.test_client import api_calls
from tests.sandbox.test_salesforce_query import follow, query

ONE = ("SELECT Id, StageName, Amount, Account.Name, Account.BillingCountry, "
       "(SELECT Id, Quantity, Product2.ProductCode FROM OpportunityLineItems) "
       "FROM Opportunity WHERE Id IN ({ids})")


def quoted(ids: list[str]) -> str:
    return ", ".join(f"'{i}'" for i in ids)


def lines_of(world: World, opp_id: str) -> list[dict[str, object]]:
    return [line for line in world.of("OpportunityLineItem")
            if sfid.same(str(line["OpportunityId"]), opp_id)]


def test_parents_nest_under_the_relationship_and_children_as_a_query_result(
        salesforce: SalesforceServer, sf_http: requests.Session, world: World) -> None:
    opps = world.of("Opportunity")[:3]
    # 15-character ids match their 18-character records, as in Salesforce.
    ids = [opps[0]["Id"], sfid.to15(opps[1]["Id"]), opps[2]["Id"]]
    body = query(salesforce, sf_http, ONE.format(ids=quoted(ids))).json()
    assert body["totalSize"] == 3 and body["done"] is True
    by_id = {r["Id"]: r for r in body["records"]}
    assert set(by_id) == {o["Id"] for o in opps}
    record = by_id[opps[0]["Id"]]
    assert list(record) == ["attributes", "Id", "StageName", "Amount", "Account",
                            "OpportunityLineItems"]
    assert record["attributes"] == {
        "type": "Opportunity", "url": f"/services/data/v60.0/sobjects/Opportunity/{opps[0]['Id']}"}
    account = next(a for a in world.of("Account") if a["Id"] == opps[0]["AccountId"])
    assert record["Account"] == {
        "attributes": {"type": "Account",
                       "url": f"/services/data/v60.0/sobjects/Account/{account['Id']}"},
        "Name": account["Name"], "BillingCountry": account["BillingCountry"]}
    children = record["OpportunityLineItems"]
    expected = lines_of(world, opps[0]["Id"])
    assert children["totalSize"] == len(expected) and children["done"] is True
    assert "nextRecordsUrl" not in children
    assert [c["Id"] for c in children["records"]] == [line["Id"] for line in expected]
    first = children["records"][0]
    assert first["attributes"]["type"] == "OpportunityLineItem"
    assert first["Quantity"] == Decimal(str(expected[0]["Quantity"]))
    assert first["Product2"]["attributes"]["type"] == "Product2"
    assert first["Product2"]["ProductCode"] == expected[0]["ProductCode"]
    # The whole answer is one API call.
    assert api_calls(salesforce)[("GET", "query")] == 1


def test_an_empty_subquery_and_an_empty_lookup_are_null(
        salesforce: SalesforceServer, sf_http: requests.Session, world: World) -> None:
    store = salesforce.simulator.store
    opp = world.of("Opportunity")[0]["Id"]
    bare = store.save("Opportunity", None, {"Name": "No lines, no account",
                                            "StageName": "Prospecting",
                                            "CloseDate": "2026-12-31"})["Id"]
    body = query(salesforce, sf_http, ONE.format(ids=quoted([bare, opp]))).json()
    by_id = {r["Id"]: r for r in body["records"]}
    assert by_id[bare]["Account"] is None and by_id[bare]["OpportunityLineItems"] is None
    assert by_id[opp]["Account"] is not None
    # A subquery's WHERE that matches nothing is null too.
    none = query(salesforce, sf_http, "SELECT Id, (SELECT Id FROM OpportunityLineItems WHERE "
                 f"Quantity < 0) FROM Opportunity WHERE Id = '{opp}'").json()
    assert none["records"][0]["OpportunityLineItems"] is None


def test_dot_paths_filter_and_sort(salesforce: SalesforceServer, sf_http: requests.Session,
                                   world: World) -> None:
    account = world.of("Account")[0]
    body = query(salesforce, sf_http, "SELECT Id, Account.Name FROM Opportunity WHERE "
                 f"Account.Name = '{account['Name']}' ORDER BY Account.Name, Id").json()
    want = sorted(o["Id"] for o in world.of("Opportunity") if o["AccountId"] == account["Id"])
    assert [r["Id"] for r in body["records"]] == want
    assert all(r["Account"]["Name"] == account["Name"] for r in body["records"])


def test_child_rows_past_a_page_follow_their_own_next_records_url(
        salesforce: SalesforceServer, sf_http: requests.Session, world: World) -> None:
    """Salesforce pages a subquery's rows: ``done`` false and a ``nextRecordsUrl`` of the
    child result, read with the query locator call like any page (one call each)."""
    store = salesforce.simulator.store
    opp = world.of("Opportunity")[0]
    template = lines_of(world, opp["Id"])[0]
    for n in range(250):
        store.save("OpportunityLineItem", None, {
            "OpportunityId": opp["Id"], "Product2Id": template["Product2Id"],
            "ProductCode": template["ProductCode"], "Quantity": n + 1,
            "UnitPrice": template["UnitPrice"]})
    expected = [line for line in store.all("OpportunityLineItem")
                if sfid.same(str(line["OpportunityId"]), opp["Id"])]
    body = query(salesforce, sf_http, "SELECT Id, (SELECT Id FROM OpportunityLineItems) "
                 f"FROM Opportunity WHERE Id = '{opp['Id']}'").json()
    assert body["done"] is True
    children = body["records"][0]["OpportunityLineItems"]
    assert children["totalSize"] == len(expected) > 200 and children["done"] is False
    assert len(children["records"]) == 200
    rest = follow(salesforce, sf_http, children["nextRecordsUrl"]).json()
    assert rest["done"] is True and "nextRecordsUrl" not in rest
    seen = [r["Id"] for r in children["records"] + rest["records"]]
    assert seen == [line["Id"] for line in expected]
    assert api_calls(salesforce)[("GET", "query")] == 2


def test_child_and_outer_pages_at_configured_sizes(
        salesforce_factory: Callable[..., SalesforceServer], world: World) -> None:
    handle = salesforce_factory(query_batch_size=2, child_batch_size=1)
    http = handle.session()
    http.headers["Authorization"] = f"Bearer {client_credentials(handle)}"
    opps = sorted(o["Id"] for o in world.of("Opportunity"))[:3]
    body = query(handle, http, "SELECT Id, (SELECT Id FROM OpportunityLineItems) FROM "
                 f"Opportunity WHERE Id IN ({quoted(opps)}) ORDER BY Id").json()
    assert body["totalSize"] == 3 and body["done"] is False and len(body["records"]) == 2
    last = follow(handle, http, body["nextRecordsUrl"]).json()
    for record in body["records"] + last["records"]:
        children = record["OpportunityLineItems"]
        expected = [line["Id"] for line in lines_of(world, record["Id"])]
        seen = [r["Id"] for r in children["records"]]
        while not children["done"]:
            children = follow(handle, http, children["nextRecordsUrl"]).json()
            seen += [r["Id"] for r in children["records"]]
        assert seen == expected


@pytest.mark.parametrize(("text", "code", "says"), [
    ("SELECT Id, Acount.Name FROM Opportunity", "INVALID_FIELD", "relationship 'Acount'"),
    ("SELECT Id, Account.Nope__c FROM Opportunity", "INVALID_FIELD", "Nope__c"),
    ("SELECT Id FROM Opportunity WHERE Account.Nope__c = null", "INVALID_FIELD", "Nope__c"),
    ("SELECT Id, (SELECT Id FROM LineItems) FROM Opportunity", "INVALID_TYPE",
     "relationship 'LineItems' in FROM part"),
    ("SELECT Id, (SELECT Nope__c FROM OpportunityLineItems) FROM Opportunity",
     "INVALID_FIELD", "Nope__c"),
    ("SELECT Id, (SELECT Id FROM OpportunityLineItems FROM Opportunity", "MALFORMED_QUERY",
     "unexpected token"),
    ("SELECT Id, (SELECT Id, (SELECT Id FROM Contacts) FROM Opportunities) FROM Account",
     "MALFORMED_QUERY", "subquery"),
    ("SELECT Id FROM Opportunity WHERE Id IN (SELECT OpportunityId FROM "
     "OpportunityLineItem)", "MALFORMED_QUERY", "unexpected token"),
    ("SELECT Id FROM Opportunity WHERE Id IN ()", "MALFORMED_QUERY", "unexpected token"),
    ("SELECT Id FROM Opportunity.Account", "MALFORMED_QUERY", "unexpected token"),
])
def test_what_the_sandbox_does_not_answer_is_refused_in_salesforces_shape(
        salesforce: SalesforceServer, sf_http: requests.Session, text: str, code: str,
        says: str) -> None:
    answer = query(salesforce, sf_http, text)
    assert answer.status_code == 400
    [error] = answer.json()
    assert error["errorCode"] == code and says in error["message"]
    assert {"message", "errorCode"} <= set(error) <= {"message", "errorCode", "fields"}
