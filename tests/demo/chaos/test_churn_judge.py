"""The churn's verdicts over records written out as data: a lost one's order cancelled (or
finance's dead letter when invoiced), an edited one's order amended to match the opportunity
now (or dead-lettered when invoiced), and the replay with the faults off."""

from __future__ import annotations

from typing import Any

from o2c_workers import sfid
from o2c_workers.demo.chaos.churn import Played
from o2c_workers.demo.chaos.churn_judge import allowed_letters, churn_verdicts, replay_verdict
from o2c_workers.demo.chaos.judge import Cohort, verdicts
from o2c_workers.demo.chaos.observe import Records
from o2c_workers.demo.chaos.plan import Churn

A, B, C, HELD = (sfid.to18(f"0065L00003A0C{n:02d}") for n in (1, 2, 3, 99))
T = 1_764_000_000.0
LOST, EDITED = ("churned, lost: order cancelled, or dead-lettered when invoiced",
                "churned, edited and won again: order amended, or dead-lettered when invoiced")
REPLAYED = "dead letters replayed with the faults off: all booked but the designed failures"


def order(name: str, opp: str, *, qty: int = 2, docstatus: int = 1, billed: int = 0,
          amended_from: str | None = None) -> dict[str, Any]:
    status = {1: "To Deliver" if billed else "To Deliver and Bill", 2: "Cancelled"}[docstatus]
    return {"name": name, "salesforce_id": opp, "po_no": opp, "docstatus": docstatus,
            "status": status, "per_billed": billed, "amended_from": amended_from,
            "net_total": f"{qty * 100}.00",
            "items": [{"idx": 1, "item_code": "SEAT", "qty": qty, "amount": f"{qty * 100}.00"}]}


def letter(opp: str, category: str, at: float, status: str = "open",
           task: str = "o2c.order.submit_order") -> dict[str, Any]:
    return {"id": f"{int(at * 1000):013d}-abc", "trace_key": opp, "category": category,
            "status": status, "task": task}


def played(opp: str, *, invoiced: bool, **changes: Any) -> Played:
    done: dict[str, Any] = {
        "state": "done", "lost_at": T + 10, "live_at_loss": [f"SO-{opp[-4:]}"],
        "invoiced_at_loss": invoiced, "reopened_at": T + 20, "no_live_order_at_reopen":
        not invoiced, "edited_at": T + 21, "rewon_at": T + 22}
    return Played(Churn(opp, invoiced, True, 30.0, 3.0, 1.0, 1.0), **{**done, **changes})


def records(orders: list[dict[str, Any]], letters: list[dict[str, Any]], *,
            shown: dict[str, str], qty: dict[str, int] | None = None) -> Records:
    qty = {A: 4, B: 4, C: 2, **(qty or {})}
    opps = {o: {"Id": o, "StageName": "Closed Won", "ERP_Order_Number__c": shown.get(o),
                "Amount": f"{qty.get(o, 2) * 100}.00"} for o in (A, B, C, HELD)}
    lines = [{"OpportunityId": o, "SortOrder": 1, "ProductCode": "SEAT", "Quantity": q,
              "TotalPrice": f"{q * 100}.00"} for o, q in qty.items()]
    return Records(designed={HELD: "credit_hold"}, opportunities=opps, sales_orders=orders,
                   dead_letters=letters, erp_stats={}, sf_stats={}, sf_deliveries=[],
                   line_items=lines)


def a_good_run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """A compensated and amended; B invoiced, kept, dead-lettered twice; C untouched."""
    orders = [order(f"SO-{A[-4:]}", A, docstatus=2),
              order(f"SO-{A[-4:]}-1", A, qty=4, amended_from=f"SO-{A[-4:]}"),
              order(f"SO-{B[-4:]}", B, billed=100),
              order(f"SO-{C[-4:]}", C)]
    letters = [letter(B, "cancellation_after_invoice", T + 12, task="o2c.order.follow_opportunity"),
               letter(B, "amendment_required", T + 25),
               letter(HELD, "credit_hold", T + 5)]
    shown = {A: f"SO-{A[-4:]}-1", B: f"SO-{B[-4:]}", C: f"SO-{C[-4:]}"}
    return orders, letters, shown


CHURN = [played(A, invoiced=False), played(B, invoiced=True)]


def judged(recs: Records, churn: list[Played] | None = None) -> dict[str, Any]:
    return {v.name: v for v in churn_verdicts(recs, churn or CHURN)}


def test_a_run_whose_churn_ends_as_it_must_passes() -> None:
    orders, letters, shown = a_good_run()
    found = judged(records(orders, letters, shown=shown))
    assert (found[LOST].ok, found[LOST].value) == (True, "2 of 2")
    assert (found[EDITED].ok, found[EDITED].value) == (True, "2 of 2")


def test_a_loss_not_compensated_fails() -> None:
    orders, letters, shown = a_good_run()
    # The fleet never cancelled A's order: the run gave up waiting to re-open it.
    stuck = [played(A, invoiced=False, state="gave_up", reopened_at=None, edited_at=None,
                    rewon_at=None, no_live_order_at_reopen=False, note="gave up while lost"),
             CHURN[1]]
    orders[0] = order(f"SO-{A[-4:]}", A)
    found = judged(records(orders[:1] + orders[2:], letters, shown=shown), stuck)
    assert not found[LOST].ok
    assert "still there" in found[LOST].detail[0]
    assert not found[EDITED].ok


def test_an_order_of_the_loss_left_live_fails_even_if_the_run_saw_none() -> None:
    orders, letters, shown = a_good_run()
    orders[0] = order(f"SO-{A[-4:]}", A)
    assert not judged(records(orders, letters, shown=shown))[LOST].ok


def test_an_invoiced_order_cancelled_or_without_finances_dead_letter_fails() -> None:
    orders, letters, shown = a_good_run()
    no_letter = [e for e in letters if e["category"] != "cancellation_after_invoice"]
    found = judged(records(orders, no_letter, shown=shown))
    assert not found[LOST].ok
    assert "cancellation_after_invoice" in found[LOST].detail[0]
    # A dead letter filed before the loss is not the loss's.
    early = [*no_letter, letter(B, "cancellation_after_invoice", T + 5)]
    assert not judged(records(orders, early, shown=shown))[LOST].ok
    cancelled = [*orders[:2], order(f"SO-{B[-4:]}", B, billed=100, docstatus=2), orders[3]]
    assert not judged(records(cancelled, letters, shown=shown))[LOST].ok


def test_an_amendment_that_does_not_match_the_opportunity_now_fails() -> None:
    orders, letters, shown = a_good_run()
    stale = [orders[0], order(f"SO-{A[-4:]}-1", A, qty=2, amended_from=f"SO-{A[-4:]}"),
             *orders[2:]]
    found = judged(records(stale, letters, shown=shown))
    assert not found[EDITED].ok
    assert "quantity 2 ≠ 4" in found[EDITED].detail[0]


def test_a_new_order_beside_a_cancelled_one_must_amend_it() -> None:
    orders, letters, shown = a_good_run()
    fresh = [orders[0], order(f"SO-{A[-4:]}-1", A, qty=4), *orders[2:]]
    assert not judged(records(fresh, letters, shown=shown))[EDITED].ok
    # Lost before it was booked: its first order, once won again, amends nothing.
    first = [order(f"SO-{A[-4:]}-1", A, qty=4), *orders[2:]]
    early = [played(A, invoiced=False, live_at_loss=[]), CHURN[1]]
    assert judged(records(first, letters, shown=shown), early)[EDITED].ok


def test_two_live_orders_or_a_write_back_of_the_old_one_fail() -> None:
    orders, letters, shown = a_good_run()
    both = [order(f"SO-{A[-4:]}", A), *orders[1:]]
    assert not judged(records(both, letters, shown=shown))[EDITED].ok
    old = {**shown, A: f"SO-{A[-4:]}"}
    assert not judged(records(orders, letters, shown=old))[EDITED].ok


def test_an_invoiced_order_amended_instead_of_dead_lettered_fails() -> None:
    orders, letters, shown = a_good_run()
    replaced = [*orders[:2], order(f"SO-{B[-4:]}", B, billed=100, docstatus=2),
                order(f"SO-{B[-4:]}-1", B, qty=4, amended_from=f"SO-{B[-4:]}"), orders[3]]
    found = judged(records(replaced, letters, shown={**shown, B: f"SO-{B[-4:]}-1"}))
    assert not found[EDITED].ok
    assert "was replaced" in found[EDITED].detail[0]


def test_finances_dead_letters_of_the_invoiced_are_no_surprise_but_others_are() -> None:
    orders, letters, shown = a_good_run()
    recs = records(orders, [*letters, letter(A, "exhausted", T + 30)], shown=shown)
    cohort = Cohort(dict.fromkeys((A, B, C, HELD), T), [C], dict.fromkeys((A, B, C), T + 5))
    found = {v.name: v for v in verdicts(recs, cohort, latency_bound_s=60,
                                          allowed=allowed_letters(CHURN))}
    unexpected = found["unexpected open dead letters"]
    assert (unexpected.ok, unexpected.value) == (False, "1")


def replayed(letters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """After the requeue: the follow step's entry resolved (B is won), the rest failed
    again."""
    return [{**letters[0], "status": "resolved"}, {**letters[1], "status": "requeued"},
            letter(B, "amendment_required", T + 60), {**letters[2], "status": "requeued"},
            letter(HELD, "credit_hold", T + 60)]


def test_the_replay_books_all_but_the_designed_failures() -> None:
    orders, letters, shown = a_good_run()
    verdict = replay_verdict(records(orders, replayed(letters), shown=shown), CHURN, 4)
    assert (verdict.ok, verdict.value) == (True, "4 of 4")


def test_a_replay_that_leaves_one_unbooked_or_a_designed_one_otherwise_fails() -> None:
    orders, letters, shown = a_good_run()
    after = replayed(letters)
    still_open = [*after, letter(C, "exhausted", T + 60)]
    verdict = replay_verdict(records(orders, still_open, shown=shown), CHURN, 4)
    assert (verdict.ok, verdict.value) == (False, "3 of 4")
    assert C in verdict.detail[1]
    # Finance's entry of a re-won opportunity still open: its replay did not resolve it.
    assert not replay_verdict(records(orders, letters, shown=shown), CHURN, 4).ok
    resolved = [e for e in after if e["category"] != "amendment_required"]
    assert not replay_verdict(records(orders, resolved, shown=shown), CHURN, 4).ok
    stale = [orders[0], order(f"SO-{A[-4:]}-1", A, qty=2, amended_from=f"SO-{A[-4:]}"),
             *orders[2:]]
    assert not replay_verdict(records(stale, after, shown=shown), CHURN, 4).ok
