"""The churn's verdicts, drawn from the final ``Records`` and the churn's own log (what was
done when, and what the ERP showed then):

- **lost**: each churned opportunity not invoiced had no live ERP order left before it was
  re-opened, and the orders it had when it was lost are cancelled; each invoiced one kept
  its invoiced order and has a ``cancellation_after_invoice`` dead letter filed after it was
  lost.
- **edited**: each one not invoiced, won again with more seats, has exactly one live order
  (an amendment, ``amended_from``, when it had orders before) that matches the opportunity
  now (each line's item, quantity and amount, the net total) and that Salesforce names;
  each invoiced one kept its order and has an ``amendment_required`` dead letter filed
  after it was won again.
- **replayed**: after every open dead letter was requeued with the faults off, every won
  opportunity is booked (a churned one as it is now) with no open dead letter, but the
  designed failures, each with open dead letters of exactly its category.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from o2c_workers.catalogue import AMENDMENT_REQUIRED, CANCELLATION_AFTER_INVOICE
from o2c_workers.demo.chaos.churn import Played, live, opportunity_of
from o2c_workers.demo.chaos.judge import SAMPLE, Verdict, id18
from o2c_workers.demo.chaos.observe import ORDER_FIELD, Records

CENT = Decimal("0.01")
#: Seconds of clock skew allowed between the run's clock and a dead letter's id.
SKEW_S = 1.0


def orders_by_opportunity(records: Records) -> dict[str, list[dict[str, Any]]]:
    """Every ERP Sales Order (any status) by the opportunity it was booked from."""
    out: dict[str, list[dict[str, Any]]] = {}
    for order in records.sales_orders:
        out.setdefault(opportunity_of(order), []).append(order)
    return out


def filed_at(entry: dict[str, Any]) -> float:
    """When a dead letter was filed: its id starts with the epoch milliseconds."""
    return int(str(entry["id"]).split("-")[0]) / 1000


def letters_by_opportunity(records: Records) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in records.dead_letters:
        out.setdefault(id18(entry.get("trace_key")) or "?", []).append(entry)
    return out


def designed_churn(played: list[Played]) -> dict[str, str]:
    """The churned opportunities built to fail (invoiced before they were lost), and the
    category they end with once won again with other content."""
    return {p.plan.opportunity: AMENDMENT_REQUIRED for p in played if p.plan.invoiced}


def allowed_letters(played: list[Played]) -> dict[str, frozenset[str]]:
    """Open dead letters that are no surprise: finance's, for the invoiced churned ones."""
    return {p.plan.opportunity: frozenset({CANCELLATION_AFTER_INVOICE, AMENDMENT_REQUIRED})
            for p in played if p.plan.invoiced}


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


def _number(value: Any) -> Decimal:
    return Decimal(str(value or 0)).normalize()


def mismatch(order: dict[str, Any], opportunity: dict[str, Any],
             lines: list[dict[str, Any]]) -> list[str]:
    """How an ERP order differs from the opportunity as Salesforce holds it now."""
    ours = sorted(lines, key=lambda line: line.get("SortOrder") or 0)
    theirs = sorted(order.get("items") or [], key=lambda row: row.get("idx") or 0)
    wrong = []
    if len(ours) != len(theirs):
        wrong.append(f"{len(theirs)} lines, Salesforce {len(ours)}")
    for n, (sf, erp) in enumerate(zip(ours, theirs, strict=False), start=1):
        pairs = (("item", erp.get("item_code"), sf.get("ProductCode")),
                 ("quantity", _number(erp.get("qty")), _number(sf.get("Quantity"))),
                 ("amount", _money(erp.get("amount")), _money(sf.get("TotalPrice"))))
        wrong += [f"line {n} {what} {a} ≠ {b}" for what, a, b in pairs if a != b]
    if _money(order.get("net_total")) != _money(opportunity.get("Amount")):
        wrong.append(f"net total {_money(order.get('net_total'))} ≠ Amount "
                     f"{_money(opportunity.get('Amount'))}")
    return wrong


def _lines_of(records: Records, opp: str) -> list[dict[str, Any]]:
    return [line for line in records.line_items if id18(line.get("OpportunityId")) == opp]


def _has_letter(letters: list[dict[str, Any]], category: str, since: float | None) -> bool:
    return since is not None and any(
        e["category"] == category and filed_at(e) >= since - SKEW_S for e in letters)


def lost_wrong(p: Played, orders: list[dict[str, Any]],
               letters: list[dict[str, Any]]) -> str | None:
    """Why the loss of one churned opportunity was not handled; None when it was."""
    if p.lost_at is None:
        return f"never lost ({p.note or p.state})"
    now = {o["name"]: o for o in orders}
    if p.plan.invoiced:
        kept = all(name in now and live(now[name]) for name in p.live_at_loss)
        if not (p.invoiced_at_loss and p.live_at_loss and kept):
            return f"invoiced order {p.live_at_loss} not kept live: now {sorted(now)}"
        if not _has_letter(letters, CANCELLATION_AFTER_INVOICE, p.lost_at):
            return "no cancellation_after_invoice dead letter after the loss"
        return None
    if p.reopened_at is None or not p.no_live_order_at_reopen:
        return f"a live ERP order was still there when it was re-opened ({p.note or p.state})"
    standing = [n for n in p.live_at_loss if now.get(n, {}).get("docstatus") != 2]
    return f"orders of the loss not cancelled: {standing}" if standing else None


def edited_wrong(p: Played, records: Records, orders: list[dict[str, Any]],
                 letters: list[dict[str, Any]]) -> str | None:
    """Why a churned opportunity won again with other content does not end as it must."""
    if p.rewon_at is None:
        return f"never won again ({p.note or p.state})"
    alive = [o for o in orders if live(o)]
    record = records.opportunities.get(p.plan.opportunity, {})
    shown = record.get(ORDER_FIELD)
    if len(alive) != 1 or alive[0]["name"] != shown:
        return f"live orders {[o['name'] for o in alive]}, Salesforce shows {shown}"
    if p.plan.invoiced:
        if alive[0]["name"] not in p.live_at_loss:
            return f"the invoiced order {p.live_at_loss} was replaced by {alive[0]['name']}"
        if not _has_letter(letters, AMENDMENT_REQUIRED, p.rewon_at):
            return "no amendment_required dead letter after it was won again"
        return None
    if len(orders) > 1 and not alive[0].get("amended_from"):
        return f"{alive[0]['name']} is not an amendment of the cancelled ones"
    wrong = mismatch(alive[0], record, _lines_of(records, p.plan.opportunity))
    return f"{alive[0]['name']}: {'; '.join(wrong)}" if wrong else None


def churn_verdicts(records: Records, played: list[Played]) -> list[Verdict]:
    orders, letters = orders_by_opportunity(records), letters_by_opportunity(records)
    lost = {p.plan.opportunity: lost_wrong(p, orders.get(p.plan.opportunity, []),
                                           letters.get(p.plan.opportunity, []))
            for p in played}
    edited = {p.plan.opportunity: edited_wrong(p, records, orders.get(p.plan.opportunity, []),
                                               letters.get(p.plan.opportunity, []))
              for p in played}
    invoiced = sum(1 for p in played if p.plan.invoiced)
    return [_verdict("churned, lost: order cancelled, or dead-lettered when invoiced", lost,
                     f"{len(played) - invoiced} cancelled, {invoiced} dead-lettered"),
            _verdict("churned, edited and won again: order amended, or dead-lettered when "
                     "invoiced", edited,
                     f"{len(played) - invoiced} amended, {invoiced} dead-lettered")]


def _verdict(name: str, wrong: dict[str, str | None], expected: str) -> Verdict:
    bad = {k: v for k, v in sorted(wrong.items()) if v}
    return Verdict(name, not bad, f"{len(wrong) - len(bad)} of {len(wrong)}",
                   f"{len(wrong)} ({expected})",
                   [f"{k}: {v}" for k, v in list(bad.items())[:SAMPLE]])


def replay_verdict(after: Records, played: list[Played], requeued: int) -> Verdict:
    """After requeueing every open dead letter with the faults off."""
    designed = {**after.designed, **designed_churn(played)}
    churned = {p.plan.opportunity for p in played}
    orders, letters = orders_by_opportunity(after), letters_by_opportunity(after)
    wrong: dict[str, str | None] = {}
    for opp, record in sorted(after.opportunities.items()):
        if record.get("StageName") != "Closed Won":
            continue
        open_ = sorted({e["category"] for e in letters.get(opp, []) if e["status"] == "open"})
        if opp in designed:
            wrong[opp] = None if open_ == [designed[opp]] else \
                f"designed {designed[opp]}, open dead letters {open_ or 'none'}"
            continue
        alive = [o for o in orders.get(opp, []) if live(o)]
        if open_ or len(alive) != 1 or alive[0]["name"] != record.get(ORDER_FIELD):
            wrong[opp] = (f"open dead letters {open_}, live orders "
                          f"{[o['name'] for o in alive]}, Salesforce shows "
                          f"{record.get(ORDER_FIELD)}")
        elif opp in churned:
            differs = mismatch(alive[0], record, _lines_of(after, opp))
            wrong[opp] = f"{alive[0]['name']}: {'; '.join(differs)}" if differs else None
        else:
            wrong[opp] = None
    bad = {k: v for k, v in wrong.items() if v}
    return Verdict("dead letters replayed with the faults off: all booked but the designed "
                   "failures", not bad, f"{len(wrong) - len(bad)} of {len(wrong)}",
                   f"{len(wrong)} ({len(designed)} designed failures dead-lettered again)",
                   [f"{requeued} dead letters requeued"]
                   + [f"{k}: {v}" for k, v in list(bad.items())[:SAMPLE]])
