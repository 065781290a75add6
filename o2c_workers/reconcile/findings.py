"""What ``o2c reconcile`` reports: findings, the repairs it starts, and the verdict."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

#: The kinds of disagreement, in the order the report lists them.
WON_WITHOUT_ORDER = "won_without_order"
ORDER_WITHOUT_WON = "order_without_won"
DUPLICATE = "duplicate_orders"
AMOUNT_MISMATCH = "amount_mismatch"
LINE_MISMATCH = "line_mismatch"
STALE_WRITE_BACK = "stale_write_back"
KINDS = (WON_WITHOUT_ORDER, ORDER_WITHOUT_WON, DUPLICATE, AMOUNT_MISMATCH, LINE_MISMATCH,
         STALE_WRITE_BACK)
LABELS = {WON_WITHOUT_ORDER: "won, no order", ORDER_WITHOUT_WON: "order, not won",
          DUPLICATE: "duplicate orders", AMOUNT_MISMATCH: "amount mismatch",
          LINE_MISMATCH: "line mismatch", STALE_WRITE_BACK: "stale write-back"}

#: The safe repairs ``--fix`` starts.
START_CHAIN = "start_chain"
WRITE_BACK = "write_back"


@dataclass
class Finding:
    """One disagreement between Salesforce and the ERP about one opportunity."""

    kind: str
    opportunity_id: str
    detail: str
    name: str | None = None
    #: The ERP orders it concerns.
    orders: list[str] = field(default_factory=list)
    #: Amounts as exact decimal strings with their currency ("45000.00 EUR").
    amounts: dict[str, str | None] = field(default_factory=dict)
    #: Written-back field → {"salesforce": value, "erp": value}.
    fields: dict[str, dict[str, str | None]] = field(default_factory=dict)
    #: What our own records say of it: a running or stalled chain, open dead letters.
    explanation: str | None = None
    #: The safe repair ``--fix`` starts (``start_chain``, ``write_back``), or None: people.
    repair: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Repair:
    """A repair ``--fix`` started (or, with ``--dry-run``, would start)."""

    opportunity_id: str
    action: str
    #: What it sends: the chain, or the ERP documents whose write-back runs again.
    what: str
    #: ``started``, ``would_start``, or why it did not start (``already_started``, ...).
    outcome: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    since: float
    checked_at: float = field(default_factory=time.time)
    #: Seconds the run took (reading both systems, comparing, repairing).
    took_s: float = 0.0
    opportunities: int = 0
    won: int = 0
    orders: int = 0
    invoices: int = 0
    salesforce_calls: int = 0
    erp_calls: int = 0
    findings: list[Finding] = field(default_factory=list)
    fix: bool = False
    dry_run: bool = False
    repairs: list[Repair] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.findings

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(f.kind for f in self.findings)
        return {kind: found.get(kind, 0) for kind in KINDS}

    def for_people(self) -> list[Finding]:
        """Findings no safe repair covers (with ``--fix``, those it did not start)."""
        started = {(r.opportunity_id, r.action) for r in self.repairs
                   if r.outcome in ("started", "would_start")}
        return [f for f in self.findings
                if f.repair is None or (self.fix and (f.opportunity_id, f.repair) not in started)]

    def verdict(self) -> str:
        if self.agrees:
            return (f"agrees: {self.opportunities} opportunities, {self.orders} orders, "
                    f"{self.invoices} invoices")
        parts = [f"{n} {LABELS[kind]}" for kind, n in self.counts.items() if n]
        return f"{len(self.findings)} disagreement(s): {', '.join(parts)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since, "checked_at": self.checked_at,
            "took_s": round(self.took_s, 3), "agrees": self.agrees,
            "verdict": self.verdict(),
            "checked": {"opportunities": self.opportunities, "won": self.won,
                        "orders": self.orders, "invoices": self.invoices},
            "cost": {"salesforce_calls": self.salesforce_calls, "erp_calls": self.erp_calls},
            "counts": self.counts,
            "findings": [f.as_dict() for f in self.findings],
            "fix": self.fix, "dry_run": self.dry_run,
            "repairs": [r.as_dict() for r in self.repairs],
            "for_people": [f"{f.kind}:{f.opportunity_id}" for f in self.for_people()],
        }
