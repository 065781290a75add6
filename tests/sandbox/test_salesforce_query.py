"""SOQL in the simulated org: the subset the sweeps send, paged by ``nextRecordsUrl``, with
Salesforce's answer and error shapes; and the client's ``query_pages`` over it."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests

from o2c_workers.salesforce import soql
from o2c_workers.sandbox.salesforce import SalesforceServer
from o2c_workers.sandbox.world import World
from tests.plugins.sandbox import client_credentials
from tests.salesforce.test_client import api_calls, client_for

WON = "SELECT Id, StageName, LastModifiedDate FROM Opportunity WHERE StageName = 'Closed Won' " \
      "AND LastModifiedDate >= {since} AND ERP_Order_Number__c = null " \
      "ORDER BY LastModifiedDate, Id"


def query(handle: SalesforceServer, http: requests.Session, text: str, *,
          headers: dict[str, str] | None = None) -> requests.Response:
    return http.get(f"{handle.url}/services/data/v60.0/query", params={"q": text},
                    headers=headers, timeout=5)


def follow(handle: SalesforceServer, http: requests.Session, url: str) -> requests.Response:
    return http.get(f"{handle.url}{url}", timeout=5)


def test_won_without_an_order_since_a_time_in_order(
        salesforce: SalesforceServer, sf_http: requests.Session, world: World) -> None:
    opps = [o["Id"] for o in world.of("Opportunity") if o["StageName"] != "Closed Won"][:4]
    since = soql.datetime_literal(time.time() - 1)
    salesforce.simulator.win(opps[:3])
    salesforce.simulator.store.save("Opportunity", opps[2], {"ERP_Order_Number__c": "SO-1"})
    body = query(salesforce, sf_http, WON.format(since=since)).json()
    assert body["totalSize"] == 2 and body["done"] is True and "nextRecordsUrl" not in body
    stamps = [(r["LastModifiedDate"], r["Id"]) for r in body["records"]]
    assert sorted(r["Id"] for r in body["records"]) == sorted(opps[:2])
    assert stamps == sorted(stamps)
    assert body["records"][0]["attributes"]["type"] == "Opportunity"
    assert body["records"][0]["LastModifiedDate"].endswith(".000+0000")
    # Earlier than the seed's stamps, every won one counts; later than now, none.
    old = query(salesforce, sf_http, WON.format(since="2000-01-01T00:00:00.000+00:00")).json()
    assert old["totalSize"] >= 2
    later = soql.datetime_literal(time.time() + 3600)
    assert query(salesforce, sf_http, WON.format(since=later)).json()["totalSize"] == 0


def test_pages_of_a_configured_size_then_limit_and_batch_size(
        salesforce_factory: Callable[..., SalesforceServer], world: World) -> None:
    handle = salesforce_factory(query_batch_size=7)
    http = handle.session()
    http.headers["Authorization"] = f"Bearer {client_credentials(handle)}"
    every = sorted(o["Id"] for o in world.of("Opportunity"))
    page = query(handle, http, "SELECT Id FROM Opportunity ORDER BY Id").json()
    seen, pages = [r["Id"] for r in page["records"]], 1
    assert page["totalSize"] == len(every) and page["done"] is False
    while not page["done"]:
        assert page["nextRecordsUrl"].startswith("/services/data/v60.0/query/01g")
        page = follow(handle, http, page["nextRecordsUrl"]).json()
        seen += [r["Id"] for r in page["records"]]
        pages += 1
    assert seen == every and pages == -(-len(every) // 7)
    assert api_calls(handle)[("GET", "query")] == pages
    limited = query(handle, http, "SELECT Id FROM Opportunity ORDER BY Id DESC LIMIT 9").json()
    assert limited["totalSize"] == 9 and [r["Id"] for r in limited["records"]] == every[::-1][:7]
    rest = follow(handle, http, limited["nextRecordsUrl"]).json()
    assert rest["done"] is True and len(rest["records"]) == 2
    # Salesforce takes a batch size of 200 to 2000 from a header.
    big = query(handle, http, "SELECT Id FROM Opportunity",
                headers={"Sforce-Query-Options": "batchSize=200"}).json()
    assert big["done"] is True and len(big["records"]) == len(every)


@pytest.mark.parametrize(("text", "code"), [
    ("DELETE FROM Opportunity", "MALFORMED_QUERY"),
    ("SELECT Id FROM Opportunity WHERE", "MALFORMED_QUERY"),
    ("SELECT FROM Opportunity", "MALFORMED_QUERY"),
    ("SELECT Id FROM Opportunity WHERE StageName = 'x' OR Amount > 1", "MALFORMED_QUERY"),
    ("SELECT Id FROM Opportunity WHERE LastModifiedDate >= '2026-11-28T00:00:00Z'",
     "MALFORMED_QUERY"),
    ("SELECT Id FROM Opportunity WHERE Amount = 'ten'", "MALFORMED_QUERY"),
    ("SELECT Id FROM Opportunity LIMIT many", "MALFORMED_QUERY"),
    ("SELECT Id FROM Opportunity ORDER BY", "MALFORMED_QUERY"),
    ("SELECT Nope__c FROM Opportunity", "INVALID_FIELD"),
    ("SELECT Id FROM Opportunity WHERE Nope__c = null", "INVALID_FIELD"),
    ("SELECT Id FROM Nothing", "INVALID_TYPE"),
])
def test_a_bad_query_gets_salesforces_error_shape(
        salesforce: SalesforceServer, sf_http: requests.Session, text: str, code: str) -> None:
    answer = query(salesforce, sf_http, text)
    assert answer.status_code == 400
    [error] = answer.json()
    assert error["errorCode"] == code and error["message"]


def test_a_bad_locator_and_quoted_strings(salesforce: SalesforceServer,
                                          sf_http: requests.Session, world: World) -> None:
    bad = follow(salesforce, sf_http, "/services/data/v60.0/query/01gSB0000000999-2000")
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    account = world.of("Account")[0]
    name = "O'Brien \\ Sons"
    salesforce.simulator.store.save("Account", account["Id"], {"Name": name})
    text = soql.select("Account", ["Id", "Name"], where=["Name = " + soql.quote(name)])
    body = query(salesforce, sf_http, text).json()
    assert [r["Id"] for r in body["records"]] == [account["Id"]]


def test_the_client_reads_every_page_one_call_each(
        salesforce_factory: Callable[..., SalesforceServer], world: World) -> None:
    handle = salesforce_factory(query_batch_size=4)
    client = client_for(handle)
    pages = list(client.query_pages("SELECT Id, Amount FROM Opportunity ORDER BY Id"))
    ids = [r["Id"] for page in pages for r in page["records"]]
    assert ids == sorted(o["Id"] for o in world.of("Opportunity"))
    assert len(pages) == -(-len(ids) // 4) == api_calls(handle)[("GET", "query")]
    assert client.api_usage() is not None and client.api_usage()[0] == len(pages)
    with pytest.raises(ValueError, match="API name"):
        soql.select("Opportunity", ["Id; DELETE"])


def test_an_id_list_finds_the_same_rows_as_a_scan_of_every_row(
        salesforce: SalesforceServer, sf_http: requests.Session, world: World) -> None:
    """``WHERE Id IN (...)`` looks only at the rows named; the answer is the one a scan of
    every row gives: ids in either form, the other conditions still applied, the org's
    order, and a malformed id matching nothing."""
    opps = [o["Id"] for o in world.of("Opportunity")]
    picked = [opps[5], opps[1][:15], opps[3], opps[5]]
    stage = world.of("Opportunity")[3]["StageName"]
    listed = ", ".join(f"'{i}'" for i in picked)

    def ids(where: str) -> list[str]:
        body = query(salesforce, sf_http, f"SELECT Id FROM Opportunity WHERE {where}").json()
        assert body["totalSize"] == len(body["records"]), body
        return [r["Id"] for r in body["records"]]

    assert ids(f"Id IN ({listed})") == [opps[1], opps[3], opps[5]]
    assert ids(f"Id = '{opps[3][:15]}'") == [opps[3]]
    with_stage = ids(f"Id IN ({listed}) AND StageName = '{stage}'")
    assert opps[3] in with_stage and set(with_stage) <= {opps[1], opps[3], opps[5]}
    assert ids(f"StageName = '{stage}' AND Id IN ({listed})") == with_stage
    assert ids("Id IN ('006000000000XYZ', 'nope')") == []
    # The scan's answer, for the same rows: a condition no id list narrows.
    every = ids(f"Id != '{opps[0]}'")
    assert [i for i in every if i in {opps[1], opps[3], opps[5]}] == [opps[1], opps[3], opps[5]]
