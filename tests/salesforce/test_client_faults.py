"""Faults the simulated org does not make on its own: 5xx, lock contention, paging, timeouts.

The org runs behind a thin WSGI layer that answers scripted faults first (as a proxy or a
busy pod would), and splits related lists into pages with ``nextRecordsUrl``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from o2c_workers import sfid
from o2c_workers.errors import InvalidPayload, Transient
from o2c_workers.sandbox.http import serve
from o2c_workers.sandbox.salesforce import SalesforceServer, SalesforceSimulator
from o2c_workers.sandbox.salesforce.tls import make_certificates
from o2c_workers.sandbox.world import World
from tests.salesforce.test_client import FAST_RETRY, api_calls, client_for, records

StartResponse = Callable[..., Any]
UNAVAILABLE = [{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
LOCKED = [{"message": "unable to obtain exclusive access to this record",
           "errorCode": "UNABLE_TO_LOCK_ROW", "fields": []}]


class FaultyOrg:
    """A WSGI layer in front of the simulator: scripted faults, then paged related lists."""

    def __init__(self, simulator: SalesforceSimulator) -> None:
        self.simulator = simulator
        #: (path prefix, status, body) answered, in order, before the org sees the request.
        self.faults: list[tuple[str, int, Any]] = []
        self.answered: Counter[int] = Counter()
        self.page_size: int | None = None
        self._pages: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def fail(self, prefix: str, status: int, body: Any, *, times: int = 1) -> None:
        self.faults.extend([(prefix, status, body)] * times)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        with self._lock:
            fault = next((f for f in self.faults if path.startswith(f[0])), None)
            if fault is not None:
                self.faults.remove(fault)
                self.answered[fault[1]] += 1
        if fault is not None:
            return _answer(start_response, fault[1], fault[2])
        if "/query/01gPAGE" in path:
            return _answer(start_response, 200, self._pages[path.rsplit("/", 1)[1]])
        if self.page_size and path.endswith("/OpportunityLineItems"):
            return self._paged(environ, start_response)
        return self.simulator(environ, start_response)

    def _paged(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        assert self.page_size is not None
        seen: list[str] = []
        body = b"".join(self.simulator(environ, lambda status, headers: seen.append(status)))
        rows = json.loads(body)["records"]
        chunks = [rows[i:i + self.page_size] for i in range(0, len(rows), self.page_size)]
        pages = [{"totalSize": len(rows), "done": n == len(chunks) - 1, "records": chunk}
                 for n, chunk in enumerate(chunks)]
        for n, page in enumerate(pages[:-1]):
            page["nextRecordsUrl"] = f"/services/data/v60.0/query/01gPAGE-{n + 1}"
            self._pages[f"01gPAGE-{n + 1}"] = pages[n + 1]
        return _answer(start_response, 200, pages[0])


def _answer(start_response: StartResponse, status: int, body: Any) -> list[bytes]:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    kind = "text/html" if isinstance(body, str) else "application/json;charset=UTF-8"
    start_response(f"{status} X", [("Content-Type", kind), ("Content-Length", str(len(raw)))])
    return [raw]


@pytest.fixture
def org(world: World, tmp_path: Path) -> Iterator[tuple[FaultyOrg, SalesforceServer]]:
    simulator = SalesforceSimulator(world)
    files = make_certificates(tmp_path / "tls")
    faulty = FaultyOrg(simulator)
    running = serve(faulty, ssl_context=files.server_context(), name="faulty-salesforce")
    simulator.bind(running.url)
    handle = SalesforceServer(simulator, running, files.ca_file)
    yield faulty, handle
    handle.stop()


def test_5xx_is_retried_within_the_call(org: tuple[FaultyOrg, SalesforceServer],
                                        world: World) -> None:
    faulty, handle = org
    faulty.fail("/services/data/", 503, UNAVAILABLE, times=2)
    opp = world.of("Opportunity")[0]
    assert client_for(handle).get_opportunity(opp["Id"])["Amount"] == opp["Amount"]
    assert faulty.answered == {503: 2} and faulty.faults == []


def test_5xx_that_persists_is_transient(org: tuple[FaultyOrg, SalesforceServer],
                                        world: World) -> None:
    faulty, handle = org
    faulty.fail("/services/data/", 503, "<html>busy</html>", times=5)
    with pytest.raises(Transient) as caught:
        client_for(handle).get_account(world.of("Account")[0]["Id"])
    assert caught.value.status == 503 and caught.value.reason == "HTTP_503"
    assert faulty.answered == {503: FAST_RETRY.max_attempts}


def test_token_endpoint_outage_is_retried(org: tuple[FaultyOrg, SalesforceServer],
                                          world: World) -> None:
    faulty, handle = org
    faulty.fail("/services/oauth2/token", 500, "<html>oops</html>")
    assert client_for(handle).get_account(world.of("Account")[0]["Id"])
    assert faulty.answered == {500: 1} and handle.simulator.authority.issued == 1


def test_locked_row_is_retried(org: tuple[FaultyOrg, SalesforceServer], world: World) -> None:
    faulty, handle = org
    faulty.fail("/services/data/", 400, LOCKED)
    opp_id = world.of("Opportunity")[0]["Id"]
    client_for(handle).update("Opportunity", opp_id, {"ERP_Order_Status__c": "Submitted"})
    assert records(handle, "Opportunity")[sfid.to15(opp_id)]["ERP_Order_Status__c"] == "Submitted"


def test_collection_rolled_back_on_a_lock_is_sent_again(
        org: tuple[FaultyOrg, SalesforceServer], world: World) -> None:
    faulty, handle = org
    first, second = world.of("Account")[:2]
    faulty.fail("/services/data/", 200, [
        {"id": first["Id"], "success": False,
         "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked", "fields": []}]},
        {"id": second["Id"], "success": False,
         "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "rb",
                     "fields": []}]}])
    client_for(handle).update_many([("Account", a["Id"], {"ERP_Customer_Number__c": "CUST-X"})
                                    for a in (first, second)])
    saved = records(handle, "Account")
    assert {saved[sfid.to15(a["Id"])]["ERP_Customer_Number__c"] for a in (first, second)} == {
        "CUST-X"}
    assert api_calls(handle)[("PATCH", "composite/sobjects")] == 1


def test_collection_result_list_of_wrong_length_is_transient(
        org: tuple[FaultyOrg, SalesforceServer], world: World) -> None:
    faulty, handle = org
    faulty.fail("/services/data/", 200, [], times=3)
    with pytest.raises(Transient) as caught:
        client_for(handle).update_many([("Account", world.of("Account")[0]["Id"],
                                         {"Phone": "+1 555 0100"})])
    assert caught.value.reason == "bad_response"


def test_an_answer_that_is_not_json_is_transient(org: tuple[FaultyOrg, SalesforceServer],
                                                 world: World) -> None:
    faulty, handle = org
    faulty.fail("/services/data/", 200, "<html>login page</html>", times=3)
    with pytest.raises(Transient) as caught:
        client_for(handle).get_account(world.of("Account")[0]["Id"])
    assert caught.value.reason == "bad_response"


def test_line_items_follow_next_records_url(org: tuple[FaultyOrg, SalesforceServer],
                                            world: World) -> None:
    faulty, handle = org
    faulty.page_size = 1
    opp = max(world.of("Opportunity"), key=lambda o: len(world.line_items(o["Id"])))
    expected = [line["Id"] for line in world.line_items(opp["Id"])]
    assert len(expected) >= 3
    assert [line["Id"] for line in client_for(handle).get_line_items(opp["Id"])] == expected


def test_multiple_upsert_matches_are_invalid_payload(org: tuple[FaultyOrg, SalesforceServer]
                                                     ) -> None:
    faulty, handle = org
    faulty.fail("/services/data/", 300, ["/services/data/v60.0/sobjects/Account/001"])
    with pytest.raises(InvalidPayload) as caught:
        client_for(handle).upsert("Account", "AccountNumber", "ACC-1", {"Name": "x"})
    assert caught.value.reason == "MULTIPLE_RECORDS"


def _base_settings(port: int) -> dict[str, Any]:
    return {"salesforce_instance_url": f"https://127.0.0.1:{port}",
            "salesforce_ca_bundle": None, "salesforce_timeout_s": 0.2}


def test_a_silent_server_times_out_as_transient(salesforce: SalesforceServer) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        client = client_for(salesforce, **_base_settings(silent.getsockname()[1]))
        started = time.monotonic()
        with pytest.raises(Transient) as caught:
            client.get_account(sfid.to18("001000000000AAA"))
        elapsed = time.monotonic() - started
    assert caught.value.reason == "timeout"
    assert elapsed < 0.2 * FAST_RETRY.max_attempts + 1.0


def test_connection_refused_is_transient(salesforce: SalesforceServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = client_for(salesforce, **_base_settings(port))
    with pytest.raises(Transient) as caught:
        client.get_account(sfid.to18("001000000000AAA"))
    assert caught.value.reason == "connection"


def test_child_rows_not_done_without_a_next_records_url_are_transient(
        org: tuple[FaultyOrg, SalesforceServer], world: World) -> None:
    """A subquery's result that says more rows follow but not where: never read as all."""
    faulty, handle = org
    opp = world.of("Opportunity")[0]["Id"]
    child = {"totalSize": 300, "done": False, "records": []}
    faulty.fail("/services/data/v60.0/query", 200, {"totalSize": 1, "done": True, "records": [
        {"attributes": {"type": "Opportunity"}, "Id": opp, "OpportunityLineItems": child}]})
    with pytest.raises(Transient) as caught:
        client_for(handle).query_records(
            "SELECT Id, (SELECT Id FROM OpportunityLineItems) FROM Opportunity",
            children=["OpportunityLineItems"])
    assert caught.value.reason == "bad_response"
