"""The REST data API: reads, writes, upsert, collections, error shapes; and simple-salesforce."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from o2c_workers.sandbox.salesforce import SalesforceServer
from o2c_workers.sandbox.world import World
from tests.plugins.sandbox import client_credentials


def _data(handle: SalesforceServer, path: str, version: str = "60.0") -> str:
    return f"{handle.url}/services/data/v{version}/{path}"


def test_get_by_15_or_18_char_id_with_attributes(salesforce: SalesforceServer,
                                                 sf_http: requests.Session, world: World) -> None:
    opp = world.of("Opportunity")[0]
    for record_id in (opp["Id"], opp["Id"][:15]):
        answer = sf_http.get(_data(salesforce, f"sobjects/Opportunity/{record_id}"), timeout=5)
        assert answer.status_code == 200
        body = answer.json()
        assert body["attributes"] == {
            "type": "Opportunity", "url": f"/services/data/v60.0/sobjects/Opportunity/{opp['Id']}"}
        assert body["Id"] == opp["Id"] and body["Name"] == opp["Name"]
        assert body["CloseDate"] == opp["CloseDate"].isoformat()
        assert body["ERP_Order_Number__c"] is None
    assert answer.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_get_fields_and_any_version(salesforce: SalesforceServer, sf_http: requests.Session,
                                    world: World) -> None:
    opp = world.of("Opportunity")[0]
    answer = sf_http.get(_data(salesforce, f"sobjects/Opportunity/{opp['Id']}", "58.0"),
                         params={"fields": "Amount,StageName"}, timeout=5)
    body = answer.json()
    assert set(body) == {"attributes", "Amount", "StageName"}
    assert body["attributes"]["url"].startswith("/services/data/v58.0/")
    answer = sf_http.get(_data(salesforce, f"sobjects/Opportunity/{opp['Id']}"),
                         params={"fields": "Amount,Nope__c"}, timeout=5)
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "INVALID_FIELD"


def test_not_found_shape(salesforce: SalesforceServer, sf_http: requests.Session) -> None:
    for path in ("sobjects/Opportunity/006000000000000AAA", "sobjects/Opportunity/nope",
                 "sobjects/NoSuchThing__c/006000000000000AAA"):
        answer = sf_http.get(_data(salesforce, path), timeout=5)
        assert answer.status_code == 404
        assert answer.json() == [{"message": "The requested resource does not exist",
                                  "errorCode": "NOT_FOUND"}]


def test_related_line_items(salesforce: SalesforceServer, sf_http: requests.Session,
                            world: World) -> None:
    opp = world.of("Opportunity")[0]
    answer = sf_http.get(_data(salesforce, f"sobjects/Opportunity/{opp['Id']}/"
                                           "OpportunityLineItems"), timeout=5)
    body = answer.json()
    expected = world.line_items(opp["Id"])
    assert body["totalSize"] == len(expected) and body["done"] is True
    assert [r["Id"] for r in body["records"]] == [line["Id"] for line in expected]
    assert all(r["attributes"]["type"] == "OpportunityLineItem" for r in body["records"])
    # Money survives the wire exactly when read as Decimal.
    exact = answer.json(parse_float=Decimal)
    assert sum(r["TotalPrice"] for r in exact["records"]) == opp["Amount"]
    account = sf_http.get(_data(salesforce, f"sobjects/Opportunity/{opp['Id']}/Account"),
                          timeout=5).json()
    assert account["Id"] == opp["AccountId"]


def test_patch_updates_and_refuses_unknown_or_read_only(
        salesforce: SalesforceServer, sf_http: requests.Session, world: World) -> None:
    opp_id = world.of("Opportunity")[0]["Id"]
    url = _data(salesforce, f"sobjects/Opportunity/{opp_id[:15]}")
    answer = sf_http.patch(url, json={"ERP_Order_Number__c": "SO-00042",
                                      "ERP_Order_Status__c": "To Deliver and Bill"}, timeout=5)
    assert answer.status_code == 204 and answer.content == b""
    assert sf_http.get(url, timeout=5).json()["ERP_Order_Number__c"] == "SO-00042"
    answer = sf_http.patch(url, json={"Bogus__c": "x"}, timeout=5)
    assert answer.status_code == 400
    assert answer.json() == [{"message": "No such column 'Bogus__c' on sobject of type "
                                         "Opportunity", "errorCode": "INVALID_FIELD",
                              "fields": ["Bogus__c"]}]
    answer = sf_http.patch(url, json={"IsWon": True}, timeout=5)
    assert answer.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    answer = sf_http.patch(url, data=b"{not json", timeout=5)
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_upsert_by_external_id(salesforce: SalesforceServer, sf_http: requests.Session,
                               world: World) -> None:
    url = _data(salesforce, "sobjects/Account/ERP_Customer_Number__c/CUST-0001")
    created = sf_http.patch(url, json={"Name": "Quayside Freight Ltd"}, timeout=5)
    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True and body["errors"] == [] and body["created"] is True
    assert body["id"].startswith("001")
    updated = sf_http.patch(url, json={"BillingCity": "Leeds"}, timeout=5)
    assert updated.status_code == 200
    assert updated.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    got = sf_http.get(url, timeout=5).json()
    assert got["Name"] == "Quayside Freight Ltd" and got["BillingCity"] == "Leeds"
    missing = sf_http.patch(_data(salesforce, "sobjects/Account/ERP_Customer_Number__c/C-2"),
                            json={"BillingCity": "Leeds"}, timeout=5)
    assert missing.status_code == 400
    assert missing.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    not_external = sf_http.patch(_data(salesforce, "sobjects/Account/Name/Acme"),
                                 json={"Phone": "1"}, timeout=5)
    assert not_external.status_code == 404


def test_composite_update(salesforce: SalesforceServer, sf_http: requests.Session,
                          world: World) -> None:
    opps = world.of("Opportunity")[:3]
    url = _data(salesforce, "composite/sobjects")
    records = [{"attributes": {"type": "Opportunity"}, "id": o["Id"],
                "Invoice_Status__c": "Invoiced"} for o in opps]
    answer = sf_http.patch(url, json={"allOrNone": False, "records": records}, timeout=5)
    assert answer.status_code == 200
    assert answer.json() == [{"id": o["Id"], "success": True, "errors": []} for o in opps]

    records[1]["Nope__c"] = 1
    records[0]["Invoice_Status__c"] = "Paid"
    answer = sf_http.patch(url, json={"allOrNone": True, "records": records}, timeout=5)
    results = answer.json()
    assert [r["success"] for r in results] == [False, False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    first = sf_http.get(_data(salesforce, f"sobjects/Opportunity/{opps[0]['Id']}"), timeout=5)
    assert first.json()["Invoice_Status__c"] == "Invoiced"

    answer = sf_http.patch(url, json={"allOrNone": False, "records": records}, timeout=5)
    assert [r["success"] for r in answer.json()] == [True, False, True]

    too_many = [records[0]] * 201
    answer = sf_http.patch(url, json={"records": too_many}, timeout=5)
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_soql_by_id(salesforce: SalesforceServer, sf_http: requests.Session,
                    world: World) -> None:
    ids = [a["Id"] for a in world.of("Account")[:2]]
    soql = f"SELECT Id, Name FROM Account WHERE Id IN ('{ids[0]}', '{ids[1][:15]}')"
    body = sf_http.get(_data(salesforce, "query"), params={"q": soql}, timeout=5).json()
    assert body["totalSize"] == 2 and {r["Id"] for r in body["records"]} == set(ids)
    bad = sf_http.get(_data(salesforce, "query"), params={"q": "DELETE everything"}, timeout=5)
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_simple_salesforce_unchanged_over_https(salesforce: SalesforceServer,
                                                world: World) -> None:
    session = salesforce.session()
    sf = Salesforce(instance_url=salesforce.url, session_id=client_credentials(salesforce),
                    version="60.0", session=session)
    opp = world.of("Opportunity")[0]
    assert sf.Opportunity.get(opp["Id"])["Name"] == opp["Name"]
    assert sf.Opportunity.update(opp["Id"], {"ERP_Order_Number__c": "SO-7"}) == 204
    assert sf.Account.upsert("ERP_Customer_Number__c/CUST-9", {"Name": "Lumen Labs"}) == 201
    assert sf.Account.upsert("ERP_Customer_Number__c/CUST-9", {"Phone": "+44 1"}) == 200
    lines = sf.restful(f"sobjects/Opportunity/{opp['Id']}/OpportunityLineItems")
    assert lines["totalSize"] == len(world.line_items(opp["Id"]))
    rows = sf.query(f"SELECT Id, ERP_Order_Number__c FROM Opportunity WHERE Id = '{opp['Id']}'")
    assert rows["records"][0]["ERP_Order_Number__c"] == "SO-7"
    assert sf.api_usage["api-usage"].used == 6
    with pytest.raises(SalesforceResourceNotFound):
        sf.Opportunity.get("006000000000000AAA")
    with pytest.raises(SalesforceMalformedRequest):
        sf.Opportunity.update(opp["Id"], {"Nope__c": 1})


def test_plain_http_when_asked(salesforce_factory, world: World) -> None:
    handle = salesforce_factory(tls=False)
    assert handle.url.startswith("http://") and handle.ca_file is None
    token = client_credentials(handle)
    answer = requests.get(f"{handle.url}/services/data/v60.0/sobjects/Account/"
                          f"{world.of('Account')[0]['Id']}",
                          headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert answer.status_code == 200


def test_sandbox_records_listing(salesforce: SalesforceServer, world: World) -> None:
    answer = salesforce.session().get(f"{salesforce.url}/_sandbox/records/Opportunity",
                                      timeout=5)
    assert [r["Id"] for r in answer.json()] == world.opportunity_ids


def test_a_deleted_record_and_a_validation_rule_refuse_writes_as_salesforce_does(
        salesforce: SalesforceServer, sf_http: requests.Session, world: World) -> None:
    gone, ruled, fine = (o["Id"] for o in world.of("Opportunity")[:3])
    control = salesforce.session()
    assert control.post(f"{salesforce.url}/_sandbox/records/Opportunity/{gone}/delete",
                        timeout=5).json() == {"id": gone, "deleted": True}
    control.post(f"{salesforce.url}/_sandbox/records/Opportunity/{ruled}/rule",
                 json={"message": "Closed opportunities are locked"}, timeout=5)
    single = sf_http.patch(_data(salesforce, f"sobjects/Opportunity/{gone}"),
                           json={"Invoice_Status__c": "Paid"}, timeout=5)
    assert single.status_code == 404
    assert single.json() == [{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED"}]
    assert sf_http.get(_data(salesforce, f"sobjects/Opportunity/{gone}"),
                       timeout=5).status_code == 404
    records = [{"attributes": {"type": "Opportunity"}, "id": i, "Invoice_Status__c": "Paid"}
               for i in (gone, ruled, fine)]
    answer = sf_http.patch(_data(salesforce, "composite/sobjects"),
                           json={"allOrNone": False, "records": records}, timeout=5).json()
    assert [r["success"] for r in answer] == [False, False, True]
    assert answer[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert answer[1]["errors"][0] == {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                                      "message": "Closed opportunities are locked",
                                      "fields": []}
    control.post(f"{salesforce.url}/_sandbox/records/Opportunity/{ruled}/rule",
                 json={"message": None}, timeout=5)
    again = sf_http.patch(_data(salesforce, f"sobjects/Opportunity/{ruled}"),
                          json={"Invoice_Status__c": "Paid"}, timeout=5)
    assert again.status_code == 204


def test_injected_faults_answer_the_next_calls_of_a_resource(
        salesforce: SalesforceServer, sf_http: requests.Session, world: World) -> None:
    opp = world.of("Opportunity")[0]["Id"]
    faults = f"{salesforce.url}/_sandbox/faults"
    control = salesforce.session()
    bad = control.post(faults, json={"resource": "composite/sobjects", "status": 200}, timeout=5)
    assert bad.status_code == 400
    control.post(faults, json={"resource": "composite/sobjects", "status": 503,
                               "count": 2}, timeout=5)
    url = _data(salesforce, "composite/sobjects")
    body = {"records": [{"attributes": {"type": "Opportunity"}, "id": opp,
                         "Invoice_Status__c": "Paid"}]}
    for _ in range(2):
        answer = sf_http.patch(url, json=body, timeout=5)
        assert answer.status_code == 503
        assert answer.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert sf_http.patch(url, json=body, timeout=5).json()[0]["success"] is True
    control.post(faults, json={"resource": "composite/sobjects", "status": 403}, timeout=5)
    limited = sf_http.patch(url, json=body, timeout=5)
    assert (limited.status_code, limited.json()[0]["errorCode"]) == (403, "REQUEST_LIMIT_EXCEEDED")
    stats = control.get(f"{salesforce.url}/_sandbox/stats", timeout=5).json()
    calls = {(c["method"], c["resource"]): c["count"] for c in stats["api"]["calls"]}
    assert calls[("PATCH", "composite/sobjects")] == 4
