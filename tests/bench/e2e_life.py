"""Our fleet alone, through the opportunity's whole life: a lone order, then a burst.

The lone order says what booking one order costs when nothing shares its calls. The burst
is booked, then every order is invoiced in the ERP (``/_sandbox/orders/{name}/invoice``);
the ERP pays most invoices a second later, in full or in part, and leaves some unpaid, and
sends its webhooks (invoice, payment, order status) to our receiver. Its figures run from
before the wins to the moment nothing moves any more: every invoice and payment written
back, no webhook left, both simulators quiet. The plain chain has no such steps.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from tests.bench.e2e_probe import Observer, erp_breakdown
from tests.bench.e2e_report import Round
from tests.bench.e2e_rounds import POLL_BURST_S, POLL_PACED_S, Bench, Meter, measure, side_up
from tests.bench.e2e_sides import Side
from tests.bench.e2e_watch import feed, settle

#: Quiet this long ends the life: longer than the ERP's payment delay and any write-back
#: a fleet may hold back to batch.
LIFE_QUIET_S = 5.0
LIFE_TIMEOUT_S = 180.0


@dataclass
class Life:
    lone: Round
    burst: Round
    #: Over the burst's whole life.
    sf: Counter[tuple[str, str]]
    erp: Counter[str]
    invoiced: int
    paid: int


def follow_life(b: Bench, side: Side) -> Life:
    with side_up(b, side, "life") as running:
        lone_ids = b.pool.take(1)
        lone = measure(b, side, running, "lone", lone_ids, lambda: feed(
            b.obs, lone_ids, rate_per_s=None, poll_s=POLL_PACED_S, timeout_s=60))
        ids = b.pool.take(b.plan.life)
        start = Meter.read(b, running, settle(b.obs))
        burst = measure(b, side, running, "life", ids, lambda: feed(
            b.obs, ids, rate_per_s=None, poll_s=POLL_BURST_S, timeout_s=180))
        for docs in b.obs.orders_of(ids).values():
            b.obs.invoice(docs[0]["name"])
        invoiced, paid = wait_written(b.obs, ids)
        end = settle(b.obs, quiet_s=LIFE_QUIET_S, timeout_s=LIFE_TIMEOUT_S, webhooks=True)
        invoiced, paid = check_written(b.obs, ids)
        erp_total = int(b.obs.erp_stats()["calls"]["total"])
        erp = erp_breakdown(b.obs.erp_calls_after(start.erp_seq)[:erp_total - start.erp_seq])
        return Life(lone, burst, end.sf - start.calls.sf, erp, invoiced, paid)


def wait_written(obs: Observer, ids: list[str]) -> tuple[int, int]:
    deadline = time.monotonic() + LIFE_TIMEOUT_S
    while True:
        try:
            return check_written(obs, ids)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def check_written(obs: Observer, ids: list[str]) -> tuple[int, int]:
    """Every opportunity shows its invoice's status, and its payment's where it was paid;
    how many were invoiced and paid."""
    invoices = {str(doc["po_no"]): doc for doc in obs.documents(
        "Sales Invoice", po_no=",".join(ids)) if doc.get("docstatus") == 1}
    records = obs.opportunities(ids)
    missing = [i for i in ids if i not in invoices or not records[i].get("Invoice_Status__c")]
    paid = [i for i in ids if i in invoices and invoices[i].get("status") != "Unpaid"]
    missing += [i for i in paid if not records[i].get("Payment_Status__c")]
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(ids)} opportunities lack their invoice "
                           f"or payment status in Salesforce, e.g. {missing[:3]}")
    return len(invoices), len(paid)
