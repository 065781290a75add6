"""The comparison itself: pure functions over what was read of both systems.

Only the live order counts (submitted, neither cancelled nor closed): amendments cancel
their predecessors, and a lost opportunity whose order is cancelled agrees. Amounts are
compared to the cent with their currencies: the opportunity's Amount (net of tax) with the
order's net total, the order's grand total with the sum of its submitted invoices. Lines are
compared by item, each line's quantity, rates, discount and amount. The written-back fields
are what the fleet's write-back would write now: the current order's number and status
(``services.orders.current_order``), the latest invoice's status and its payment status.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from o2c_workers.errors import O2CError
from o2c_workers.models import ErpInvoice, ErpOrder, cents
from o2c_workers.reconcile import findings as f
from o2c_workers.reconcile.findings import Finding
from o2c_workers.reconcile.read import Snapshot
from o2c_workers.services.billing import payment_status
from o2c_workers.services.compare import line_differences
from o2c_workers.services.convert import WON, decimal, order_from_opportunity
from o2c_workers.services.orders import WriteBackFields, current_order

UNPAID = "Unpaid"


def check(snap: Snapshot, fields: WriteBackFields) -> list[Finding]:
    """Every disagreement of every opportunity in scope, opportunity by opportunity."""
    out: list[Finding] = []
    for opportunity_id in snap.scope:
        out.extend(check_one(snap, opportunity_id, fields))
    return out


def check_one(snap: Snapshot, opportunity_id: str, fields: WriteBackFields) -> list[Finding]:
    opp = snap.opportunities.get(opportunity_id)
    orders = snap.orders.get(opportunity_id, [])
    live = [o for o in orders if o.live]
    won = opp is not None and opp.get("StageName") == WON
    name = str(opp.get("Name")) if opp and opp.get("Name") else None

    def finding(kind: str, detail: str, **extra: Any) -> Finding:
        return Finding(kind, opportunity_id, detail, name=name, **extra)

    if len(live) > 1:
        return [finding(f.DUPLICATE, f"{len(live)} live ERP orders for one opportunity: "
                        f"{', '.join(o.name for o in live)}; cancel all but one in the ERP",
                        orders=[o.name for o in live])]
    if live and not won:
        stage = f"is {opp.get('StageName')}" if opp else "is not in Salesforce"
        return [finding(f.ORDER_WITHOUT_WON, f"ERP order {live[0].name} is live, but the "
                        f"opportunity {stage}", orders=[live[0].name])]
    found: list[Finding] = []
    if won and not live:
        if orders:
            states = ", ".join(f"{o.name} {o.status or 'Draft'}" for o in orders)
            found.append(finding(f.WON_WITHOUT_ORDER, f"no live ERP order; its orders are "
                                 f"{states}", orders=[o.name for o in orders]))
        else:
            found.append(finding(f.WON_WITHOUT_ORDER, "no ERP order",
                                 repair=f.START_CHAIN))
    invoices = [i for i in snap.invoices.get(opportunity_id, []) if i.docstatus == 1]
    if won and live and opp is not None:
        order = snap.details.get(live[0].name, live[0])
        found.extend(_amounts(finding, opp, order, invoices))
        found.extend(_lines(finding, opp, snap.lines.get(opportunity_id, []), order))
    if opp is not None and orders:
        stale = _write_back(opp, orders, invoices, fields)
        if stale:
            names = ", ".join(f"{k} {_shown(v['salesforce'])} (ERP: {_shown(v['erp'])})"
                              for k, v in stale.items())
            safe = not found
            found.append(finding(f.STALE_WRITE_BACK, f"Salesforce shows {names}",
                                 orders=[o.name for o in orders], fields=stale,
                                 repair=f.WRITE_BACK if safe else None))
    return found


def _money(value: Decimal | None, currency: str | None) -> str | None:
    return None if value is None else f"{cents(value)} {currency or '?'}"


def _amounts(finding: Any, opp: dict[str, Any], order: ErpOrder,
             invoices: list[ErpInvoice]) -> list[Finding]:
    currency = opp.get("CurrencyIsoCode")
    try:
        amount: Decimal | None = cents(decimal(opp, "Amount"))
    except O2CError:
        amount = None
    invoiced = sum((i.grand_total for i in invoices), Decimal("0.00")) if invoices else None
    invoice_currencies = sorted({i.currency for i in invoices})
    amounts = {
        "opportunity_amount": _money(amount, currency),
        "order_net_total": _money(order.net_total, order.currency),
        "order_grand_total": _money(order.grand_total, order.currency),
        "invoice_total": _money(invoiced, ",".join(invoice_currencies)),
    }
    wrong = []
    if currency != order.currency:
        wrong.append(f"currency {currency} in Salesforce, {order.currency} in the ERP")
    if amount != cents(order.net_total):
        wrong.append(f"opportunity amount {amounts['opportunity_amount']} ≠ order "
                     f"{order.name} net total {amounts['order_net_total']}")
    if invoiced is not None and (invoice_currencies != [order.currency]
                                 or invoiced != cents(order.grand_total)):
        wrong.append(f"invoice total {amounts['invoice_total']} "
                     f"({', '.join(i.name for i in invoices)}) ≠ order grand total "
                     f"{amounts['order_grand_total']}")
    if not wrong:
        return []
    return [finding(f.AMOUNT_MISMATCH, "; ".join(wrong), orders=[order.name],
                    amounts=amounts)]


def _lines(finding: Any, opp: dict[str, Any], items: list[dict[str, Any]],
           order: ErpOrder) -> list[Finding]:
    """Lines compared by item code (each side's own order kept among equal codes)."""
    try:
        ours = order_from_opportunity(opp, items)
    except (O2CError, ValueError) as exc:
        return [finding(f.LINE_MISMATCH, f"its product lines cannot be read: {exc}",
                        orders=[order.name])]
    ours = ours.model_copy(update={"lines": sorted(ours.lines, key=lambda li: li.item_code)})
    theirs = order.model_copy(update={"lines": tuple(sorted(order.lines,
                                                            key=lambda li: li.item_code))})
    changes = line_differences(ours, theirs)
    if not changes:
        return []
    detail = f"order {order.name} vs the opportunity's lines (ERP → Salesforce): " \
             + "; ".join(changes)
    return [finding(f.LINE_MISMATCH, detail, orders=[order.name])]


def expected_fields(orders: list[ErpOrder], invoices: list[ErpInvoice],
                    fields: WriteBackFields) -> dict[str, str | None]:
    """What the write-back would put on the opportunity now (absent: nothing to write)."""
    out: dict[str, str | None] = {}
    current = current_order(orders)
    if current is not None:
        out[fields.order_number] = current.name
        out[fields.order_status] = current.status
    if invoices:
        latest = invoices[-1]
        out[fields.invoice_status] = latest.status
        out[fields.payment_status] = payment_status(latest)
    return out


def _write_back(opp: dict[str, Any], orders: list[ErpOrder], invoices: list[ErpInvoice],
                fields: WriteBackFields) -> dict[str, dict[str, str | None]]:
    stale = {}
    for name, wanted in expected_fields(orders, invoices, fields).items():
        have = opp.get(name)
        have = None if have in (None, "") else str(have)
        # A payment status is written when a payment arrives: none yet reads as unpaid.
        if name == fields.payment_status and have is None and wanted == UNPAID:
            continue
        if have != wanted:
            stale[name] = {"salesforce": have, "erp": wanted}
    return stale


def _shown(value: str | None) -> str:
    return "nothing" if value is None else repr(value)
