"""The opportunity's life with real workers, through the webhooks: won, cancelled in the ERP
and won again; no longer won when its step runs; edited after booking; lost after booking.
One fleet for the module (each test takes its own opportunities); the ERP invoices only
when a test says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from o2c_workers.status import transaction_status
from tests.e2e.conftest import O2C, TOKEN, start_o2c
from tests.plugins.workers import wait_for

pytestmark = pytest.mark.slow

ORDER_NUMBER, ORDER_STATUS = "ERP_Order_Number__c", "ERP_Order_Status__c"


@pytest.fixture(scope="module")
def o2c(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[O2C]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    running = start_o2c(redis_url, client, Path(tmp_path_factory.mktemp("lifecycle")),
                        world_args={"accounts": 6, "opportunities": 8},
                        erp={"invoice_delay_s": 3600.0, "payment_delay_s": 3600.0})
    yield running
    running.fleet.stop()
    running.sandbox.stop()
    client.flushdb()
    client.close()


def sf(o2c: O2C, route: str, body: Any = None) -> Any:
    answer = o2c.sf.post(f"{o2c.sandbox.sf_url}/_sandbox/{route}", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json(parse_float=Decimal)


def erp_api(o2c: O2C, method: str, body: dict[str, Any]) -> Any:
    cfg = o2c.sandbox.erp_config
    answer = requests.post(f"{o2c.sandbox.erp_url}/api/method/{method}", json=body, timeout=10,
                           headers={"Authorization": f"token {cfg.api_key}:{cfg.api_secret}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def invoice(o2c: O2C, order: str) -> None:
    requests.post(f"{o2c.sandbox.erp_url}/_sandbox/orders/{order}/invoice",
                  timeout=10).raise_for_status()


def orders_of(o2c: O2C, opp: str) -> list[dict[str, Any]]:
    rows = o2c.erp_docs("Sales Order")
    return sorted((r for r in rows if r["salesforce_id"].startswith(opp)),
                  key=lambda r: r["creation"])


def live(o2c: O2C, opp: str) -> list[str]:
    return [r["name"] for r in orders_of(o2c, opp) if r["docstatus"] == 1
            and r["status"] != "Closed"]


def shows(o2c: O2C, opp: str, number: str | None, status: str) -> dict[str, Any]:
    """Wait until the opportunity shows this ERP order number (any, if None) and status."""
    def check() -> dict[str, Any] | None:
        record = o2c.sf_records("Opportunity")[opp]
        shown = record.get(ORDER_NUMBER)
        ok = record.get(ORDER_STATUS) == status and (
            bool(shown) if number is None else shown == number)
        return record if ok else None
    return wait_for(check, timeout_s=40, interval_s=0.2,
                    what=f"{opp} to show order {number or '(any)'} {status}")


def stage_of(o2c: O2C, opp: str) -> str:
    return str(transaction_status(o2c.redis, "o2c", opp, stall_after_s=300)["stage"])


def dead_letters(o2c: O2C, opp: str) -> list[Any]:
    store = o2c.dead_letters()
    return store.many(store.ids(trace_key=opp))


def test_cancelled_in_the_erp_then_won_again_books_one_new_live_order(o2c):
    opp = o2c.ok_opportunities()[0]
    sf(o2c, f"opportunities/{opp}/win")
    first = shows(o2c, opp, None, "To Deliver and Bill")[ORDER_NUMBER]
    # Finance cancels it in the ERP: its webhook brings the status to the opportunity.
    erp_api(o2c, "frappe.client.cancel", {"doctype": "Sales Order", "name": first})
    shows(o2c, opp, first, "Cancelled")
    sf(o2c, f"opportunities/{opp}/reopen")
    sf(o2c, f"opportunities/{opp}/win")
    shows(o2c, opp, f"{first}-1", "To Deliver and Bill")
    assert live(o2c, opp) == [f"{first}-1"]
    [old, new] = orders_of(o2c, opp)
    assert (old["status"], new["amended_from"], new["salesforce_id"]) == (
        "Cancelled", first, f"{opp}-1")
    assert dead_letters(o2c, opp) == []


def test_an_opportunity_lost_before_its_step_runs_is_skipped_then_booked_when_won(o2c):
    opp = o2c.ok_opportunities()[1]
    # Salesforce cannot deliver for a while: the win and the loss arrive late, together.
    sf(o2c, "outbound", {"url": None})
    sf(o2c, f"opportunities/{opp}/win")
    sf(o2c, f"opportunities/{opp}/lose")
    sf(o2c, "outbound", {"url": f"{o2c.receiver_url}/salesforce/outbound?token={TOKEN}"})
    wait_for(lambda: stage_of(o2c, opp) == "skipped", timeout_s=30, what="the skip")
    events = [e["event"] for e in transaction_status(o2c.redis, "o2c", opp,
                                                     stall_after_s=300)["timeline"]]
    assert "skipped" in events and "order_submitted" not in events
    assert orders_of(o2c, opp) == [] and dead_letters(o2c, opp) == []
    sf(o2c, f"opportunities/{opp}/win")
    shows(o2c, opp, None, "To Deliver and Bill")
    wait_for(lambda: stage_of(o2c, opp) == "written_back", what="written back")
    assert len(live(o2c, opp)) == 1


def test_changed_lines_with_the_same_total_are_amended_until_invoiced(o2c):
    opp = o2c.ok_opportunities()[2]
    sf(o2c, f"opportunities/{opp}/lines", [{"line": 1, "Quantity": 20, "Discount": 5}])
    sf(o2c, f"opportunities/{opp}/win")
    first = shows(o2c, opp, None, "To Deliver and Bill")[ORDER_NUMBER]
    # 25 seats at 24% off instead of 20 at 5%: the same amount, another order.
    edited = sf(o2c, f"opportunities/{opp}/lines", [{"line": 1, "Quantity": 25,
                                                     "Discount": 24}])
    assert edited["Amount"] == o2c.sf_records("Opportunity")[opp]["Amount"]
    shows(o2c, opp, f"{first}-1", "To Deliver and Bill")
    [old, new] = orders_of(o2c, opp)
    assert (old["status"], new["amended_from"]) == ("Cancelled", first)
    assert (new["items"][0]["qty"], new["items"][0]["discount_percentage"]) == (25, 24)
    # Once invoiced, a change is for finance: nothing is cancelled.
    invoice(o2c, new["name"])
    sf(o2c, f"opportunities/{opp}/lines", [{"line": 1, "Quantity": 30}])
    [letter] = wait_for(lambda: dead_letters(o2c, opp), what="the amendment dead letter")
    assert (letter.category, letter.task) == ("amendment_required", "o2c.order.submit_order")
    assert "quantity 25 → 30" in letter.message and letter.remediation.startswith("Finance")
    assert live(o2c, opp) == [new["name"]]


def test_lost_after_booking_cancels_the_order_unless_it_is_invoiced(o2c):
    cancelled, invoiced = o2c.ok_opportunities()[3:5]
    sf(o2c, "opportunities/win", {"ids": [cancelled, invoiced]})
    shows(o2c, cancelled, None, "To Deliver and Bill")
    booked = shows(o2c, invoiced, None, "To Deliver and Bill")[ORDER_NUMBER]
    invoice(o2c, booked)
    shows(o2c, invoiced, booked, "To Deliver")
    sf(o2c, f"opportunities/{cancelled}/lose")
    sf(o2c, f"opportunities/{invoiced}/lose")
    shows(o2c, cancelled, None, "Cancelled")
    wait_for(lambda: stage_of(o2c, cancelled) == "cancelled", what="the cancelled outcome")
    assert live(o2c, cancelled) == []
    [letter] = wait_for(lambda: dead_letters(o2c, invoiced), what="finance's dead letter")
    assert (letter.category, letter.task) == ("cancellation_after_invoice",
                                              "o2c.order.follow_opportunity")
    assert booked in letter.message and json.dumps(letter.payload)
    assert live(o2c, invoiced) == [booked]
    assert dead_letters(o2c, cancelled) == []
