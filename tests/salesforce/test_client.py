"""The Salesforce client against the simulated org over HTTPS: reads, writes, error mapping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from config.settings import Settings, load_settings
from o2c_workers import sfid
from o2c_workers.backoff import RetryPolicy
from o2c_workers.errors import AuthError, InvalidPayload, NotFound, Throttled, Transient
from o2c_workers.salesforce import SalesforceClient, build_salesforce
from o2c_workers.salesforce.encoding import dumps
from o2c_workers.salesforce.errors import from_status
from o2c_workers.salesforce.http import TimeoutAdapter
from o2c_workers.sandbox.salesforce import SalesforceServer
from o2c_workers.sandbox.world import World, generate_world

#: Quick retries for tests: the same three tries, waits of milliseconds.
FAST_RETRY = RetryPolicy(max_attempts=3, base_s=0.01, cap_s=0.02)


def settings_for(handle: SalesforceServer, **overrides: Any) -> Settings:
    """Settings that point the client at ``handle`` with the client-credentials grant."""
    config = handle.simulator.config
    values: dict[str, Any] = {
        "salesforce_instance_url": handle.url, "salesforce_login_url": None,
        "salesforce_api_version": config.api_version,
        "salesforce_client_id": config.client_id,
        "salesforce_client_secret": config.client_secret,
        "salesforce_username": None, "salesforce_private_key_file": None,
        "salesforce_ca_bundle": handle.ca_file, "salesforce_timeout_s": 5.0,
    }
    values.update(overrides)
    return load_settings(**values)


def client_for(handle: SalesforceServer, **overrides: Any) -> SalesforceClient:
    return SalesforceClient(settings_for(handle, **overrides), retry=FAST_RETRY)


def records(handle: SalesforceServer, sobject: str) -> dict[str, dict[str, Any]]:
    """Every record of a type as the simulator holds it, by 15-character id."""
    answer = handle.session().get(f"{handle.url}/_sandbox/records/{sobject}", timeout=5)
    answer.raise_for_status()
    return {sfid.to15(row["Id"]): row for row in answer.json(parse_float=Decimal)}


def api_calls(handle: SalesforceServer) -> dict[tuple[str, str], int]:
    answer = handle.session().get(f"{handle.url}/_sandbox/stats", timeout=5)
    answer.raise_for_status()
    return {(c["method"], c["resource"]): c["count"] for c in answer.json()["api"]["calls"]}


@pytest.fixture
def sf(salesforce: SalesforceServer) -> Iterator[SalesforceClient]:
    client = client_for(salesforce)
    yield client
    client.close()


# --- reads ----------------------------------------------------------------------------------

def test_opportunity_read_keeps_money_decimal(sf: SalesforceClient, world: World) -> None:
    seeded = world.of("Opportunity")[0]
    opp = sf.get_opportunity(seeded["Id"])
    assert opp["Id"] == seeded["Id"] and opp["attributes"]["type"] == "Opportunity"
    assert isinstance(opp["Amount"], Decimal) and opp["Amount"] == seeded["Amount"]
    assert isinstance(opp["Probability"], Decimal)
    assert opp["CloseDate"] == seeded["CloseDate"].isoformat()


def test_account_read_by_15_character_id(sf: SalesforceClient, world: World) -> None:
    seeded = world.of("Account")[0]
    account = sf.get_account(sfid.to15(seeded["Id"]))
    assert account["Id"] == seeded["Id"] and account["Name"] == seeded["Name"]
    assert isinstance(account["AnnualRevenue"], Decimal)
    assert account["AnnualRevenue"] == seeded["AnnualRevenue"]
    assert isinstance(account["NumberOfEmployees"], int)


def test_line_items_add_up_to_the_amount(sf: SalesforceClient, world: World) -> None:
    opp = world.of("Opportunity")[1]
    lines = sf.get_line_items(opp["Id"])
    assert sorted(line["Id"] for line in lines) == sorted(
        line["Id"] for line in world.line_items(opp["Id"]))
    assert all(isinstance(line["UnitPrice"], Decimal) for line in lines)
    assert all(not isinstance(v, float) for line in lines for v in line.values())
    assert sum((line["TotalPrice"] for line in lines), Decimal(0)) == opp["Amount"]


def test_api_usage_follows_the_limit_header(salesforce: SalesforceServer,
                                            sf: SalesforceClient, world: World) -> None:
    assert sf.api_usage() is None
    sf.get_account(world.of("Account")[0]["Id"])
    sf.get_account(world.of("Account")[1]["Id"])
    allocation = salesforce.simulator.config.daily_api_requests
    assert sf.api_usage() == (2, allocation)


# --- writes ---------------------------------------------------------------------------------

def test_update_writes_the_fields(salesforce: SalesforceServer, sf: SalesforceClient,
                                  world: World) -> None:
    opp_id = world.of("Opportunity")[2]["Id"]
    sf.update("Opportunity", opp_id, {"ERP_Order_Number__c": "SO-00042",
                                      "ERP_Order_Status__c": "To Deliver and Bill",
                                      "Amount": Decimal("1234567.89")})
    saved = records(salesforce, "Opportunity")[sfid.to15(opp_id)]
    assert saved["ERP_Order_Number__c"] == "SO-00042"
    assert saved["ERP_Order_Status__c"] == "To Deliver and Bill"
    assert saved["Amount"] == Decimal("1234567.89")
    assert api_calls(salesforce)[("PATCH", "Opportunity")] == 1


def test_update_many_writes_mixed_types_in_one_call(salesforce: SalesforceServer,
                                                    sf: SalesforceClient, world: World) -> None:
    opps, accounts = world.of("Opportunity")[:3], world.of("Account")[:2]
    changes: list[tuple[str, str, dict[str, Any]]] = [
        ("Opportunity", o["Id"], {"Invoice_Status__c": "Paid", "Payment_Status__c": "Paid"})
        for o in opps]
    changes += [("Account", a["Id"], {"ERP_Customer_Number__c": f"CUST-{n}"})
                for n, a in enumerate(accounts)]
    sf.update_many(changes)
    saved_opps, saved_accounts = records(salesforce, "Opportunity"), records(salesforce, "Account")
    assert all(saved_opps[sfid.to15(o["Id"])]["Invoice_Status__c"] == "Paid" for o in opps)
    assert [saved_accounts[sfid.to15(a["Id"])]["ERP_Customer_Number__c"]
            for a in accounts] == ["CUST-0", "CUST-1"]
    assert api_calls(salesforce)[("PATCH", "composite/sobjects")] == 1


def test_update_many_chunks_above_200_records(
        salesforce_factory: Callable[..., SalesforceServer]) -> None:
    big = generate_world(seed=5, accounts=250, opportunities=10)
    handle = salesforce_factory(on=big)
    client = client_for(handle)
    client.update_many([("Account", a["Id"], {"ERP_Customer_Number__c": f"C-{n:04d}"})
                        for n, a in enumerate(big.of("Account"))])
    assert api_calls(handle)[("PATCH", "composite/sobjects")] == 2
    saved = records(handle, "Account")
    assert sorted(row["ERP_Customer_Number__c"] for row in saved.values()) == [
        f"C-{n:04d}" for n in range(250)]
    client.update_many([])
    assert api_calls(handle)[("PATCH", "composite/sobjects")] == 2


def test_update_many_is_all_or_none(salesforce: SalesforceServer, sf: SalesforceClient,
                                    world: World) -> None:
    good, bad = world.of("Opportunity")[:2]
    with pytest.raises(InvalidPayload) as caught:
        sf.update_many([("Opportunity", good["Id"], {"Invoice_Status__c": "Paid"}),
                        ("Opportunity", bad["Id"], {"No_Such_Field__c": "x"})])
    assert caught.value.reason == "INVALID_FIELD"
    assert bad["Id"] in str(caught.value) and "No_Such_Field__c" in str(caught.value)
    assert records(salesforce, "Opportunity")[sfid.to15(good["Id"])]["Invoice_Status__c"] is None


def test_upsert_creates_then_updates(salesforce: SalesforceServer, sf: SalesforceClient) -> None:
    fields = {"Name": "Upserted Ltd", "AnnualRevenue": Decimal("1000000.50")}
    assert sf.upsert("Account", "ERP_Customer_Number__c", "CUST-9001", fields) is True
    assert sf.upsert("Account", "ERP_Customer_Number__c", "CUST-9001",
                     {"Name": "Upserted Limited"}) is False
    matches = [row for row in records(salesforce, "Account").values()
               if row["ERP_Customer_Number__c"] == "CUST-9001"]
    assert len(matches) == 1
    assert matches[0]["Name"] == "Upserted Limited"
    assert matches[0]["AnnualRevenue"] == Decimal("1000000.50")


# --- the error mapping ----------------------------------------------------------------------

def test_unknown_record_is_not_found(sf: SalesforceClient) -> None:
    with pytest.raises(NotFound) as caught:
        sf.get_opportunity(sfid.to18("006000000000ZZZ"))
    assert caught.value.status == 404 and caught.value.reason == "NOT_FOUND"


def test_invalid_field_is_invalid_payload(sf: SalesforceClient, world: World) -> None:
    with pytest.raises(InvalidPayload) as caught:
        sf.update("Opportunity", world.of("Opportunity")[0]["Id"], {"Bogus__c": "1"})
    assert caught.value.status == 400 and caught.value.reason == "INVALID_FIELD"
    assert caught.value.body == [{"message": "No such column 'Bogus__c' on sobject of type "
                                             "Opportunity", "errorCode": "INVALID_FIELD",
                                  "fields": ["Bogus__c"]}]


def test_read_only_field_is_invalid_payload(sf: SalesforceClient, world: World) -> None:
    with pytest.raises(InvalidPayload) as caught:
        sf.update("Opportunity", world.of("Opportunity")[0]["Id"], {"IsWon": True})
    assert caught.value.reason == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_malformed_id_costs_no_api_call(salesforce: SalesforceServer,
                                        sf: SalesforceClient) -> None:
    with pytest.raises(InvalidPayload) as caught:
        sf.get_opportunity("006/../Account")
    assert caught.value.reason == "MALFORMED_ID"
    with pytest.raises(InvalidPayload):
        sf.update_many([("Account", "not-an-id", {"Name": "x"})])
    assert api_calls(salesforce) == {}


def test_spent_allocation_is_throttled(salesforce_factory: Callable[..., SalesforceServer],
                                       world: World) -> None:
    handle = salesforce_factory(daily_api_requests=2)
    client = client_for(handle)
    account_id = world.of("Account")[0]["Id"]
    client.get_account(account_id)
    client.get_account(account_id)
    with pytest.raises(Throttled) as caught:
        client.get_account(account_id)
    assert caught.value.reason == "REQUEST_LIMIT_EXCEEDED" and caught.value.status == 403
    assert caught.value.retryable and caught.value.retry_after_s == 900
    assert client.api_usage() == (2, 2)
    assert api_calls(handle)[("GET", "Account")] == 3


@pytest.mark.parametrize("status, body, error, reason", [
    (401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired"}], AuthError,
     "INVALID_SESSION_ID"),
    (403, [{"errorCode": "INSUFFICIENT_ACCESS", "message": "no"}], AuthError,
     "INSUFFICIENT_ACCESS"),
    (403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests"}], Throttled,
     "REQUEST_LIMIT_EXCEEDED"),
    (404, [{"errorCode": "NOT_FOUND", "message": "gone"}], NotFound, "NOT_FOUND"),
    (400, [{"errorCode": "MALFORMED_ID", "message": "bad id"}], InvalidPayload, "MALFORMED_ID"),
    (400, [{"errorCode": "UNABLE_TO_LOCK_ROW", "message": "locked"}], Transient,
     "UNABLE_TO_LOCK_ROW"),
    (300, ["/services/data/v60.0/sobjects/Account/001"], InvalidPayload, "MULTIPLE_RECORDS"),
    (503, "<html>down</html>", Transient, "HTTP_503"),
    (500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "boom"}], Transient,
     "UNKNOWN_EXCEPTION"),
])
def test_status_mapping(status: int, body: Any, error: type[Exception], reason: str) -> None:
    mapped = from_status(status, body, what="read Account 001")
    assert type(mapped) is error and mapped.reason == reason and mapped.status == status


# --- the session ----------------------------------------------------------------------------

def test_environment_ca_bundle_is_ignored(salesforce: SalesforceServer, world: World,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/nonexistent/ca.pem")
    client = build_salesforce(settings_for(salesforce))
    try:
        assert client.get_account(world.of("Account")[0]["Id"])["Id"]
    finally:
        client.close()


def test_a_given_session_gets_the_timeout(salesforce: SalesforceServer, world: World) -> None:
    http = salesforce.session()
    client = SalesforceClient(settings_for(salesforce, salesforce_timeout_s=7.0), session=http)
    adapter = http.get_adapter(salesforce.url)
    assert isinstance(adapter, TimeoutAdapter) and adapter.timeout == (3.05, 7.0)
    assert client.get_account(world.of("Account")[0]["Id"])["Id"]
    client.close()


# --- request bodies -------------------------------------------------------------------------

def test_bodies_keep_decimals_exact_and_refuse_floats() -> None:
    body = {"Amount": Decimal("12345678901234567.01"), "Qty": 3, "On": date(2026, 11, 20),
            "At": datetime(2026, 11, 20, 13, 40, 22, tzinfo=UTC), "Ok": True, "No": None}
    assert dumps(body) == ('{"Amount":12345678901234567.01,"Qty":3,"On":"2026-11-20",'
                           '"At":"2026-11-20T13:40:22.000Z","Ok":true,"No":null}')
    with pytest.raises(TypeError):
        dumps({"Amount": 1.5})
    with pytest.raises(ValueError):
        dumps({"At": datetime(2026, 11, 20)})
    with pytest.raises(ValueError):
        dumps({"Amount": Decimal("NaN")})
