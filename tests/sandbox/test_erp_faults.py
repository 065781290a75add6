"""Every fault knob of the ERP simulator, and the stats that report it, over real HTTP."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.sandbox.erp_support import ACC_OK, AUTH, Client, erp_client, start_erp

__all__ = ["erp_client", "start_erp"]


def _burst(url: str, count: int) -> list[requests.Response]:
    def call(_: int) -> requests.Response:
        return requests.get(url, headers=AUTH, timeout=10)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(call, range(count)))


def test_faults_are_read_and_partly_updated_live(erp_client: Client) -> None:
    assert erp_client.sandbox("faults")["rate_limit_per_s"] is None
    updated = erp_client.sandbox("faults", {"latency_ms": 5, "error_rate": 0.25})
    assert (updated["latency_ms"], updated["error_rate"]) == (5, 0.25)
    assert erp_client.sandbox("faults", {"concurrency_limit": 4})["latency_ms"] == 5
    for bad, field in (({"error_rate": 2}, "error_rate"), ({"latency_ms": -1}, "latency_ms"),
                       ({"rate_limit_per_s": "fast"}, "rate_limit_per_s"),
                       ({"nonsense": 1}, "nonsense"), ({"error_status": 404}, "error_status")):
        response = requests.post(f"{erp_client.url}/_sandbox/faults", json=bad, timeout=5)
        assert response.status_code == 400, bad
        assert any(detail.startswith(f"{field}:") for detail in response.json()["details"])
    assert erp_client.sandbox("faults")["error_rate"] == 0.25


def test_rate_limit_is_exact_over_a_sliding_second(start_erp) -> None:
    _, client = start_erp(faults={"rate_limit_per_s": 10})
    started = time.monotonic()
    responses = _burst(client.url + "/api/resource/Item", 50)
    elapsed = time.monotonic() - started
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 429}
    if elapsed < 1.0:
        assert statuses[200] == 10
    refused = [r for r in responses if r.status_code == 429]
    assert refused and all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert refused[0].json()["exc_type"] == "TooManyRequestsError"
    stats = client.sandbox("stats")
    assert stats["peak_requests_per_s"]["accepted"] == 10
    assert stats["peak_requests_per_s"]["received"] > 10
    assert stats["faults_injected"]["rate_limited"] == statuses[429]
    assert stats["calls"]["by_status"] == {str(k): v for k, v in statuses.items()}
    calls = client.sandbox("calls")["calls"]
    assert sum(c["fault"] == "rate_limited" for c in calls) == statuses[429]


def test_rate_limit_lets_calls_through_again_after_the_window(start_erp) -> None:
    _, client = start_erp(faults={"rate_limit_per_s": 2})
    assert [client.get("/api/resource/Item").status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(1.05)
    assert client.get("/api/resource/Item").status_code == 200


def test_concurrency_limit_is_never_exceeded(start_erp) -> None:
    _, client = start_erp(faults={"concurrency_limit": 3, "latency_ms": 300})
    responses = _burst(client.url + "/api/resource/Item", 12)
    statuses = Counter(r.status_code for r in responses)
    assert statuses[429] > 0 and statuses[200] >= 3
    stats = client.sandbox("stats")
    assert stats["peak_concurrency"] == 3
    assert stats["faults_injected"]["concurrency_limited"] == statuses[429]
    assert stats["faults_injected"]["latency"] == statuses[200]


def test_latency_is_added_and_recorded(start_erp) -> None:
    _, client = start_erp(faults={"latency_ms": 150, "latency_jitter_ms": 20})
    started = time.monotonic()
    assert client.get("/api/resource/Item").status_code == 200
    assert time.monotonic() - started >= 0.15
    call = client.sandbox("calls")["calls"][-1]
    assert call["duration_ms"] >= 150 and call["path"] == "/api/resource/Item"
    assert client.sandbox("stats")["faults_injected"] == {"latency": 1}


def test_injected_server_errors_change_nothing(start_erp) -> None:
    _, client = start_erp(faults={"error_rate": 1.0, "error_status": 503})
    response = client.post("/api/resource/Customer", {"customer_name": "Acme",
                                                      "salesforce_id": ACC_OK})
    assert response.status_code == 503
    assert response.json()["exc_type"] == "InternalServerError"
    client.sandbox("faults", {"error_rate": 0})
    assert client.get("/api/resource/Customer").json()["data"] == []
    stats = client.sandbox("stats")
    assert stats["faults_injected"] == {"error": 1}
    assert stats["documents"]["Customer"] == 0


def test_maintenance_window_answers_503_with_retry_after(erp_client: Client) -> None:
    erp_client.sandbox("faults", {"maintenance_for_s": 0.4})
    response = erp_client.get("/api/resource/Item")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["exc_type"] == "SessionStopped"
    assert 0 < erp_client.sandbox("faults")["maintenance_for_s"] <= 0.4
    time.sleep(0.45)
    assert erp_client.get("/api/resource/Item").status_code == 200
    erp_client.sandbox("faults", {"maintenance_for_s": 60})
    assert erp_client.get("/api/resource/Item").headers["Retry-After"] == "60"
    erp_client.sandbox("faults", {"maintenance_for_s": 0})
    assert erp_client.get("/api/resource/Item").status_code == 200
    assert erp_client.sandbox("stats")["faults_injected"] == {"maintenance": 2}


def test_timeout_after_commit_loses_the_answer_but_keeps_the_record(start_erp) -> None:
    _, client = start_erp(faults={"timeout_after_commit_rate": 1.0, "timeout_hang_s": 0.6})
    with pytest.raises(requests.ReadTimeout):
        client.post("/api/resource/Customer", {"customer_name": "Acme",
                                               "salesforce_id": ACC_OK}, timeout=0.2)
    found = client.get("/api/resource/Customer", filters={"salesforce_id": ACC_OK})
    assert found.json()["data"] == [{"name": "Acme"}]
    with pytest.raises(requests.ConnectionError):
        client.post("/api/resource/Customer", {"customer_name": "Other",
                                               "salesforce_id": "001000000000008AAA"})
    stats = client.sandbox("stats")
    assert stats["faults_injected"] == {"timeout_after_commit": 2}
    assert stats["documents"]["Customer"] == 2


def test_call_record_filters_and_reset(erp_client: Client) -> None:
    erp_client.get("/api/resource/Item")
    mark = time.time()
    erp_client.get("/api/resource/Customer")
    calls = erp_client.sandbox("calls")["calls"]
    assert [c["path"] for c in calls] == ["/api/resource/Item", "/api/resource/Customer"]
    assert set(calls[0]) >= {"time", "method", "path", "status", "duration_ms"}
    after = requests.get(f"{erp_client.url}/_sandbox/calls",
                         params={"after_seq": calls[0]["seq"]}, timeout=5).json()["calls"]
    since = requests.get(f"{erp_client.url}/_sandbox/calls",
                         params={"since": mark}, timeout=5).json()["calls"]
    assert [c["doctype"] for c in after] == [c["doctype"] for c in since] == ["Customer"]
    erp_client.sandbox("reset-stats", {})
    stats = erp_client.sandbox("stats")
    assert stats["calls"]["total"] == 0 and stats["peak_requests_per_s"]["received"] == 0
    assert stats["documents"]["Item"] == 3


def test_documents_are_read_outside_the_faults_and_limits(start_erp) -> None:
    _, client = start_erp(faults={"rate_limit_per_s": 1})
    created = client.customer("Acme", ACC_OK)
    time.sleep(1.0)  # the ERP's own limit of one call a second
    other = client.customer("Globex", "0015L00000Globex")
    client.sandbox("faults", {"error_rate": 1.0, "maintenance_for_s": 60})
    assert client.get("/api/resource/Customer").status_code == 503
    calls = client.sandbox("stats")["calls"]["total"]
    for _ in range(3):
        docs = client.sandbox("documents/Customer")["data"]
        assert [(d["name"], d["salesforce_id"]) for d in docs] == [
            (created["name"], ACC_OK), (other["name"], "0015L00000Globex")]
    assert client.sandbox("documents/Sales Order")["data"] == []
    both = f"{created['name']},{other['name']}"
    assert [d["name"] for d in client.sandbox(f"documents/Customer?name={both}")["data"]] \
        == [created["name"], other["name"]]
    assert [d["name"] for d in client.sandbox(f"documents/Customer?name={other['name']}")
            ["data"]] == [other["name"]]
    assert client.sandbox("documents/Customer?name=Nobody")["data"] == []
    assert client.sandbox("stats")["calls"]["total"] == calls
    unknown = requests.get(f"{client.url}/_sandbox/documents/Spaceship", timeout=5)
    assert unknown.status_code == 400
