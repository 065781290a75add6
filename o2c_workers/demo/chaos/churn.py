"""Play the churn of a chaos run, and its billing clerk, as users do through the sandbox's
HTTP routes: a sales rep loses, re-opens, edits and wins opportunities again in Salesforce
(each a save, so the org's outbound rule sends its messages); a clerk invoices booked orders
in the ERP.

One thread reads the churned opportunities' ERP orders once a second
(``/_sandbox/documents``, outside its faults) and moves each on when its time has come:

1. **lose** at its seeded time; one to be invoiced first waits until it is booked and the
   ERP shows its order invoiced;
2. **re-open** once it was lost ``lost_s`` and the fleet has handled the loss: the ERP holds
   no live order of it (not invoiced: the order was cancelled), or finance's
   ``cancellation_after_invoice`` dead letter is filed (``o2c dlq list``); until the run's
   deadline at most (a loss the fleet saw only once it was won again would prove nothing);
3. **edit** a product line (more seats) while it is open, then **win** it again.

The clerk invoices each order Salesforce shows as booked (read every second by the run's
``WriteBackWatch``), but for the churned opportunities meant to be compensated: their
orders stay uninvoiced, so that cancelling them is allowed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Container
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from o2c_workers import sfid
from o2c_workers.catalogue import CANCELLATION_AFTER_INVOICE
from o2c_workers.demo.chaos.observe import dead_letters, erp_documents
from o2c_workers.demo.chaos.plan import Churn

#: How often the ERP's orders are read and the churn moved on, seconds.
TICK_S = 1.0
#: How often finance's dead letters are read while an invoiced one is lost, seconds.
LETTERS_EVERY_S = 6.0
PENDING, LOST, REOPENED, EDITED, DONE, GAVE_UP = (
    "pending", "lost", "reopened", "edited", "done", "gave_up")


@dataclass
class Played:
    """What was done to one churned opportunity and what the ERP showed then (wall-clock
    epoch seconds)."""

    plan: Churn
    state: str = PENDING
    lost_at: float | None = None
    #: Its live ERP orders when it was lost, and whether they were invoiced.
    live_at_loss: list[str] = field(default_factory=list)
    invoiced_at_loss: bool = False
    reopened_at: float | None = None
    #: Whether the ERP held no live order of it when it was re-opened.
    no_live_order_at_reopen: bool = False
    #: Whether finance's dead letter of the loss was filed when it was re-opened.
    letter_at_reopen: bool = False
    edited_at: float | None = None
    amount_after_edit: str | None = None
    rewon_at: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def opportunity_of(order: dict[str, Any]) -> str:
    """The opportunity an ERP order was booked from (every revision's), by 18-character id."""
    for value in (str(order.get("salesforce_id") or "").split("-")[0], order.get("po_no")):
        text = str(value or "")
        if sfid.is_valid(text):
            return sfid.to18(text)
    return "?"


def live(order: dict[str, Any]) -> bool:
    return order.get("docstatus") == 1 and order.get("status") not in ("Closed", "Cancelled")


def invoiced(order: dict[str, Any]) -> bool:
    return float(order.get("per_billed") or 0) >= 100


class Churner:
    """The churn and the billing clerk, on one thread; ``played`` is the record."""

    def __init__(self, churn: list[Churn], *, sf: requests.Session, sf_url: str,
                 erp_url: str, env: dict[str, str],
                 shown: Callable[[], dict[str, str]],
                 won: Callable[[], Container[str]]) -> None:
        self.sf, self.sf_url, self.erp_url, self.shown = sf, sf_url, erp_url, shown
        #: The opportunities the schedule has won so far (its win waves may run late).
        self.won = won
        self.env = env
        self.played = {c.opportunity: Played(c) for c in churn}
        #: Orders of these opportunities are never invoiced by the clerk.
        self.held = {c.opportunity for c in churn if not c.invoiced}
        self.invoices = 0
        self.started = time.monotonic()
        #: Monotonic time after which nothing more is started (set once the faults are over).
        self.deadline = math.inf
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._invoiced: set[str] = set()
        #: Opportunities with finance's dead letter of a loss, and when the store was read.
        self._letters: set[str] = set()
        self._letters_read = 0.0

    @property
    def finished(self) -> bool:
        return all(p.state in (DONE, GAVE_UP) for p in self.played.values())

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="chaos-churn", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            shown = self.shown()
            try:
                self._bill(shown)
                orders = self._orders()
            except (requests.RequestException, ValueError):
                continue
            self._read_letters()
            for played in self.played.values():
                try:
                    self._step(played, orders.get(played.plan.opportunity, []), shown)
                except requests.RequestException as exc:
                    played.note = f"will try again: {exc}"

    def _orders(self) -> dict[str, list[dict[str, Any]]]:
        """The ERP orders of the churned opportunities still on their way."""
        going = [p.plan.opportunity for p in self.played.values()
                 if p.state not in (DONE, GAVE_UP)]
        by_opp: dict[str, list[dict[str, Any]]] = {}
        if going:
            for order in erp_documents(self.erp_url, "Sales Order", {"po_no": ",".join(going)}):
                by_opp.setdefault(opportunity_of(order), []).append(order)
        return by_opp

    def _bill(self, shown: dict[str, str]) -> None:
        """Invoice each order Salesforce shows booked, but those held back, once."""
        for opp, name in shown.items():
            if opp in self.held or name in self._invoiced:
                continue
            self._invoiced.add(name)
            answer = requests.post(f"{self.erp_url}/_sandbox/orders/{name}/invoice", timeout=30)
            self.invoices += answer.ok

    def _read_letters(self) -> None:
        """Finance's dead letters of a loss, every few seconds while an invoiced one is
        lost (the ``o2c`` command, as for the judge)."""
        waiting = any(p.state == LOST and p.plan.invoiced for p in self.played.values())
        if not waiting or time.monotonic() - self._letters_read < LETTERS_EVERY_S:
            return
        self._letters_read = time.monotonic()
        found = dead_letters(self.env, "--category", CANCELLATION_AFTER_INVOICE)
        self._letters |= {sfid.to18(e["trace_key"]) for e in found or []
                          if sfid.is_valid(str(e["trace_key"]))}

    def _step(self, played: Played, orders: list[dict[str, Any]],
              shown: dict[str, str]) -> None:
        plan, now = played.plan, time.monotonic()
        alive = [o for o in orders if live(o)]
        if played.state in (PENDING, LOST) and now > self.deadline:
            played.note, played.state = f"gave up while {played.state}", GAVE_UP
        elif played.state == PENDING and now - self.started >= plan.lose_at_s:
            if plan.opportunity not in self.won():
                return  # lost before its win wave, it would be won after the loss
            booked = plan.opportunity in shown
            if (plan.after_booking and not booked) or (plan.invoiced and not (
                    alive and all(invoiced(o) for o in alive))):
                return
            played.live_at_loss = [o["name"] for o in alive]
            played.invoiced_at_loss = any(invoiced(o) for o in alive)
            played.lost_at = self._act(plan.opportunity, "lose")
            played.state = LOST
        elif played.state == LOST and time.time() - (played.lost_at or 0) >= plan.lost_s:
            handled = plan.opportunity in self._letters if plan.invoiced else not alive
            if not handled:
                return
            played.no_live_order_at_reopen = not alive
            played.letter_at_reopen = plan.opportunity in self._letters
            played.reopened_at = self._act(plan.opportunity, "reopen")
            played.state = REOPENED
        elif played.state == REOPENED and time.time() - (played.reopened_at or 0) \
                >= plan.edit_after_s:
            played.amount_after_edit = self._edit(plan)
            played.edited_at = time.time()
            played.state = EDITED
        elif played.state == EDITED and time.time() - (played.edited_at or 0) \
                >= plan.win_after_s:
            played.rewon_at = self._act(plan.opportunity, "win")
            played.state = DONE

    def _act(self, opportunity: str, action: str) -> float:
        """``lose``, ``reopen`` or ``win`` the opportunity; the moment it was asked."""
        moment = time.time()
        answer = self.sf.post(f"{self.sf_url}/_sandbox/opportunities/{opportunity}/{action}",
                              json={}, timeout=30)
        answer.raise_for_status()
        return moment

    def _edit(self, plan: Churn) -> str:
        url = f"{self.sf_url}/_sandbox/opportunities/{plan.opportunity}/lines"
        lines = self.sf.get(url, timeout=30)
        lines.raise_for_status()
        quantity = float(lines.json()[plan.line - 1]["Quantity"]) + plan.add_qty
        answer = self.sf.post(url, json=[{"line": plan.line, "Quantity": quantity}],
                              timeout=30)
        answer.raise_for_status()
        return str(answer.json()["Amount"])
