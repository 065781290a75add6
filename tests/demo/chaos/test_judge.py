"""The chaos run's verdicts over records written out as data: what counts as booked,
duplicated, lost, and how the latency bound reads."""

from __future__ import annotations

import math

from o2c_workers import sfid
from o2c_workers.demo.chaos.judge import Cohort, Verdict, nearest_rank, verdicts
from o2c_workers.demo.chaos.observe import Records

A, B, C, D, HELD = (sfid.to18(f"0065L00003A0B{n:02d}") for n in (1, 2, 3, 4, 99))


def order(name: str, opp: str, **extra: object) -> dict[str, object]:
    return {"name": name, "salesforce_id": opp, "po_no": opp, "docstatus": 1,
            "status": "To Deliver and Bill", **extra}


def letter(opp: str, category: str, status: str = "open") -> dict[str, object]:
    return {"trace_key": opp, "category": category, "status": status, "task": "t"}


def records(*, orders: list[dict[str, object]], shown: dict[str, str],
            letters: list[dict[str, object]]) -> Records:
    opps = {o: {"Id": o, "ERP_Order_Number__c": shown.get(o)} for o in (A, B, C, D, HELD)}
    return Records(designed={HELD: "credit_hold"}, opportunities=opps, sales_orders=orders,
                   dead_letters=letters, erp_stats={}, sf_stats={}, sf_deliveries=[])


def judged(recs: Records, booked_at: dict[str, float] | None = None,
           calm: list[str] | None = None) -> dict[str, Verdict]:
    won = dict.fromkeys((A, B, C, D, HELD), 100.0)
    cohort = Cohort(won, calm or [C, D], booked_at or dict.fromkeys((A, B, C, D), 110.0))
    return {v.name: v for v in verdicts(recs, cohort, latency_bound_s=60)}


def test_a_clean_run_passes_every_verdict() -> None:
    recs = records(orders=[order(f"SO-{n}", o) for n, o in enumerate((A, B, C, D))],
                   shown={A: "SO-0", B: "SO-1", C: "SO-2", D: "SO-3"},
                   letters=[letter(HELD, "credit_hold"), letter(A, "exhausted", "resolved")])
    found = judged(recs)
    assert [name for name, v in found.items() if not v.ok] == []


def test_two_live_orders_are_a_duplicate_but_a_cancelled_one_is_not() -> None:
    recs = records(orders=[order("SO-0", A), order("SO-9", A, salesforce_id=None),
                           order("SO-1", B), order("SO-8", B, docstatus=2),
                           order("SO-2", C), order("SO-3", D)],
                   shown={A: "SO-0", B: "SO-1", C: "SO-2", D: "SO-3"},
                   letters=[letter(HELD, "credit_hold")])
    duplicates = judged(recs)["duplicate orders"]
    assert (duplicates.ok, duplicates.value) == (False, "1")


def test_not_written_back_or_not_in_the_erp_is_lost_unless_dead_lettered() -> None:
    recs = records(orders=[order("SO-0", A), order("SO-1", B), order("SO-3", D)],
                   shown={A: "SO-0", D: "SO-3"},
                   letters=[letter(HELD, "credit_hold"), letter(C, "exhausted")])
    found = judged(recs, booked_at={A: 110.0, D: 110.0})
    lost = found["lost or stalled"]
    assert (lost.ok, lost.value) == (False, "1")
    assert lost.detail[:2] == [
        "1 with an ERP order not written back to Salesforce", "0 with no ERP order"]
    unexpected = found["unexpected open dead letters"]
    assert (unexpected.ok, unexpected.value) == (False, "1")


def test_a_designed_failure_needs_its_own_category_and_no_order() -> None:
    recs = records(orders=[order(f"SO-{n}", o) for n, o in enumerate((A, B, C, D, HELD))],
                   shown={A: "SO-0", B: "SO-1", C: "SO-2", D: "SO-3"},
                   letters=[letter(HELD, "exhausted")])
    designed = judged(recs)["designed failures dead-lettered with their category"]
    assert (designed.ok, designed.value) == (False, "0 of 1")
    assert "has an ERP order" in designed.detail[0]


def test_a_write_back_naming_another_order_is_wrong() -> None:
    recs = records(orders=[order(f"SO-{n}", o) for n, o in enumerate((A, B, C, D))],
                   shown={A: "SO-1", B: "SO-1", C: "SO-2", D: "SO-3"},
                   letters=[letter(HELD, "credit_hold"), letter(A, "exhausted")])
    found = judged(recs)
    assert not found["write-backs name a live ERP order of their own"].ok


def test_latency_counts_the_unbooked_as_infinite() -> None:
    recs = records(orders=[order(f"SO-{n}", o) for n, o in enumerate((A, B, C, D))],
                   shown={A: "SO-0", B: "SO-1", C: "SO-2", D: "SO-3"},
                   letters=[letter(HELD, "credit_hold")])
    slow = judged(recs, booked_at={A: 110.0, B: 110.0, C: 110.0, D: 170.5})
    latency = slow["won → booked p95, won after the last fault"]
    assert (latency.ok, latency.value) == (False, "70.5 s")
    unbooked = judged(recs, booked_at={A: 110.0, B: 110.0, C: 110.0})
    assert unbooked["won → booked p95, won after the last fault"].value == "not booked"
    assert nearest_rank([1.0, 2.0, math.inf], 50) == 2.0
    assert nearest_rank(list(map(float, range(1, 101))), 95) == 95.0
    assert nearest_rank([], 95) is None
