"""The repairs ``o2c reconcile --fix`` starts, and only the safe ones:

* a won opportunity with no ERP order, no chain in flight and no open dead letter: its chain
  starts exactly as the catch-up sweep starts it (``Sweeper.start_records``: the same
  payload, trace key and per-version marks, so a chain already taken in is not started
  twice);
* a stale write-back, where the order agrees with the opportunity: the fleet's own
  write-back runs again, as if the ERP had sent its document's event once more (the same
  routing and guarded write as ``POST /erp/events``); the task reads the ERP's current
  state before it writes.

Everything else (duplicates, amounts, lines, orders of lost opportunities) is for people.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from o2c_workers.erp.protocol import ErpAdapter
from o2c_workers.receiver.erp_events import ErpEvent, ErpEventHandler
from o2c_workers.reconcile import findings as f
from o2c_workers.reconcile.explain import State
from o2c_workers.reconcile.findings import Finding, Repair
from o2c_workers.reconcile.read import Snapshot
from o2c_workers.services.orders import WriteBackFields, current_order
from o2c_workers.sweeps.specs import OPPORTUNITIES
from o2c_workers.sweeps.sweeper import Sweeper

#: The outcome of a repair left to the chain in flight or to people.
IN_HAND = {"running": "left: its chain is running", "stalled": "left: its chain is stalled "
           "(the sweep re-drives it)", "dead_lettered": "left: it has an open dead letter"}


@dataclass
class Fixer:
    sweeper: Sweeper
    erp_events: ErpEventHandler
    erp: ErpAdapter
    fields: WriteBackFields

    def repair(self, snap: Snapshot, found: list[Finding], states: dict[str, State], *,
               dry_run: bool) -> list[Repair]:
        out: list[Repair] = []
        for finding in found:
            if finding.repair is None:
                continue
            state = states[finding.opportunity_id].state
            if state is not None:
                out.append(Repair(finding.opportunity_id, finding.repair, "-", IN_HAND[state]))
            elif finding.repair == f.START_CHAIN:
                out.append(self.start_chain(snap, finding, dry_run=dry_run))
            elif finding.repair == f.WRITE_BACK:
                out.append(self.write_back(snap, finding, dry_run=dry_run))
        return out

    def start_chain(self, snap: Snapshot, finding: Finding, *, dry_run: bool) -> Repair:
        raw = snap.opportunities[finding.opportunity_id]
        record = {k: v for k, v in raw.items() if k in OPPORTUNITIES.fields}
        result = self.sweeper.start_records(OPPORTUNITIES, [record], dry_run=dry_run)
        outcome = result.found[0].outcome if result.found else "left"
        return Repair(finding.opportunity_id, f.START_CHAIN, "the O2C chain (as the sweep)",
                      outcome)

    def events(self, snap: Snapshot, finding: Finding) -> list[tuple[str, str, str]]:
        """(DocType, event, name) of each document whose write-back is to run again."""
        opportunity_id = finding.opportunity_id
        orders = snap.orders.get(opportunity_id, [])
        invoices = [i for i in snap.invoices.get(opportunity_id, []) if i.docstatus == 1]
        stale = set(finding.fields)
        out = []
        current = current_order(orders)
        if current is not None and stale & {self.fields.order_number, self.fields.order_status}:
            out.append(("Sales Order", "on_update_after_submit", current.name))
        if invoices and self.fields.payment_status in stale:
            # A payment's write-back writes the invoice status too.
            payments = self.erp.payment_entries_of(invoices[-1])
            out += [("Payment Entry", "on_submit", p.name) for p in payments]
        paid = any(doctype == "Payment Entry" for doctype, _, _ in out)
        if invoices and self.fields.invoice_status in stale and not paid:
            out.append(("Sales Invoice", "on_update_after_submit", invoices[-1].name))
        return out

    def write_back(self, snap: Snapshot, finding: Finding, *, dry_run: bool) -> Repair:
        events = self.events(snap, finding)
        what = ", ".join(f"{doctype} {name}" for doctype, _, name in events) or "-"
        if not events:
            return Repair(finding.opportunity_id, f.WRITE_BACK, what,
                          "left: no ERP document to write back from")
        if dry_run:
            return Repair(finding.opportunity_id, f.WRITE_BACK, what, "would_start")
        now = time.time()
        stamp = f"reconcile {now:.6f}"
        items = [self.erp_events.plan(ErpEvent(
            event=event, doctype=doctype, name=name, modified=stamp,
            doc={"salesforce_id": finding.opportunity_id}), now=now).item
            for doctype, event, name in events]
        # The sweeper's writer: on RabbitMQ it publishes the tasks before their marks.
        taken = self.sweeper.batches.run(items, mark_ttl_s=self.sweeper.settings.dedupe_ttl_s)
        return Repair(finding.opportunity_id, f.WRITE_BACK, what,
                      "started" if all(taken) else "already_started")
