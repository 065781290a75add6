"""The verdicts of a chaos run, drawn from the final ``Records`` alone.

- **booked**: the ERP holds a live Sales Order for the opportunity (not cancelled, not
  closed) and Salesforce's ``ERP_Order_Number__c`` names it.
- **duplicates**: opportunities with more than one live ERP order. Must be 0.
- **lost or stalled**: won opportunities neither booked nor dead-lettered (open) when the
  run stopped waiting. Must be 0.
- **designed failures**: each opportunity built to fail has an open dead letter of its
  category, and no ERP order.
- **unexpected dead letters**: open dead letters of opportunities built to succeed (but
  those ``allowed``: finance's, for the churned ones invoiced before their loss).
- **latency**: p95 of won → booked (Salesforce shows the order number, read every second)
  over the opportunities won after the last fault; one not booked counts as infinite.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from o2c_workers import sfid
from o2c_workers.demo.chaos.observe import ORDER_FIELD, Records

#: Sales Order statuses that end an order's life.
DEAD_STATUSES = frozenset({"Closed", "Cancelled"})
#: Ids listed per failed verdict.
SAMPLE = 8


@dataclass(frozen=True)
class Verdict:
    name: str
    ok: bool
    value: str
    expected: str
    detail: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Cohort:
    """Who was won when: opportunity → the moment it was won, and the calm cohort."""

    won_at: dict[str, float]
    calm_ids: list[str]
    booked_at: dict[str, float]


def id18(value: Any) -> str | None:
    text = str(value or "")
    return sfid.to18(text) if sfid.is_valid(text) else None


def live_orders(records: Records) -> dict[str, list[dict[str, Any]]]:
    """Live ERP Sales Orders by the opportunity they carry (``salesforce_id``, else
    ``po_no``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for order in records.sales_orders:
        if order.get("docstatus") == 2 or order.get("status") in DEAD_STATUSES:
            continue
        opp = id18(order.get("salesforce_id")) or id18(order.get("po_no")) or "?"
        out.setdefault(opp, []).append(order)
    return out


def open_dead_letters(records: Records) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in records.dead_letters:
        if entry.get("status") == "open":
            out.setdefault(id18(entry.get("trace_key")) or "?", []).append(entry)
    return out


def booked(records: Records) -> set[str]:
    orders = live_orders(records)
    return {opp for opp, record in records.opportunities.items()
            if record.get(ORDER_FIELD)
            and record[ORDER_FIELD] in {o["name"] for o in orders.get(opp, [])}}


def nearest_rank(values: list[float], pct: float) -> float | None:
    """The nearest-rank percentile (a value that happened); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def latencies(cohort: Cohort, ids: list[str]) -> list[float]:
    return [cohort.booked_at[i] - cohort.won_at[i] if i in cohort.booked_at else math.inf
            for i in ids]


def verdicts(records: Records, cohort: Cohort, *, latency_bound_s: float,
             allowed: dict[str, frozenset[str]] | None = None) -> list[Verdict]:
    """The delivery verdicts; ``allowed`` names the open dead letters (by category) that
    are no surprise for an opportunity not built to fail (the churn's designed ones)."""
    won = set(cohort.won_at)
    done = booked(records)
    dead = open_dead_letters(records)
    orders = live_orders(records)
    dupes = sorted(o for o, found in orders.items() if len(found) > 1)
    lost = sorted(won - done - set(dead))
    return [
        Verdict("duplicate orders", not dupes, str(len(dupes)), "0",
                [f"{o}: {[x['name'] for x in orders[o]]}" for o in dupes[:SAMPLE]]),
        Verdict("lost or stalled", not lost, str(len(lost)), "0", _why_lost(lost, orders)),
        _designed(records, dead, orders),
        _unexpected(records, dead, allowed or {}),
        _wrong_write_backs(records, orders),
        _latency(cohort, records, latency_bound_s),
    ]


def _why_lost(lost: list[str], orders: dict[str, list[dict[str, Any]]]) -> list[str]:
    in_erp = [o for o in lost if o in orders]
    out = [f"{len(in_erp)} with an ERP order not written back to Salesforce",
           f"{len(lost) - len(in_erp)} with no ERP order"] if lost else []
    return out + lost[:SAMPLE]


def _designed(records: Records, dead: dict[str, list[dict[str, Any]]],
              orders: dict[str, list[dict[str, Any]]]) -> Verdict:
    wrong = []
    for opp, category in sorted(records.designed.items()):
        got = sorted({e["category"] for e in dead.get(opp, [])})
        if got != [category] or opp in orders:
            wrong.append(f"{opp}: designed {category}, dead letters {got or 'none'}"
                         f"{', has an ERP order' if opp in orders else ''}")
    right = len(records.designed) - len(wrong)
    return Verdict("designed failures dead-lettered with their category", not wrong,
                   f"{right} of {len(records.designed)}", str(len(records.designed)), wrong)


def _unexpected(records: Records, dead: dict[str, list[dict[str, Any]]],
                allowed: dict[str, frozenset[str]]) -> Verdict:
    extra = [e for opp, found in dead.items() if opp not in records.designed for e in found
             if e["category"] not in allowed.get(opp, frozenset())]
    by_category = Counter(e["category"] for e in extra)
    return Verdict("unexpected open dead letters", not extra, str(len(extra)), "0",
                   [f"{k}: {n}" for k, n in sorted(by_category.items())]
                   + [f"{e['trace_key']} {e['category']} {e['task']}" for e in extra[:SAMPLE]])


def _wrong_write_backs(records: Records, orders: dict[str, list[dict[str, Any]]]) -> Verdict:
    wrong = [f"{opp}: Salesforce shows {rec[ORDER_FIELD]}, ERP has "
             f"{[o['name'] for o in orders.get(opp, [])]}"
             for opp, rec in sorted(records.opportunities.items())
             if rec.get(ORDER_FIELD)
             and rec[ORDER_FIELD] not in {o["name"] for o in orders.get(opp, [])}]
    return Verdict("write-backs name a live ERP order of their own", not wrong,
                   str(len(wrong)), "0", wrong[:SAMPLE])


def _latency(cohort: Cohort, records: Records, bound_s: float) -> Verdict:
    calm = [i for i in cohort.calm_ids if i not in records.designed]
    values = latencies(cohort, calm)
    p95 = nearest_rank(values, 95)
    unbooked = sum(1 for v in values if math.isinf(v))
    ok = p95 is not None and p95 <= bound_s
    shown = "-" if p95 is None else ("not booked" if math.isinf(p95) else f"{p95:.1f} s")
    return Verdict("won → booked p95, won after the last fault", ok, shown,
                   f"≤ {bound_s:g} s", [f"{len(calm)} opportunities, {unbooked} not booked"])


def as_dicts(found: list[Verdict]) -> list[dict[str, Any]]:
    return [asdict(v) for v in found]
