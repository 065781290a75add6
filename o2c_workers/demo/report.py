"""The demo's closing table: what happened, checked against the simulators' own record."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.table import Table

from o2c_workers.demo.progress import Snapshot
from o2c_workers.reconcile import Report
from o2c_workers.reconcile.findings import WON_WITHOUT_ORDER


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def summary_table(snap: Snapshot, *, expected_failures: dict[str, str],
                  erp_stats: dict[str, Any], sf_stats: dict[str, Any],
                  reconciled: Report | str | None = None) -> Table:
    table = Table(title="o2c demo: opportunity to cash", show_lines=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("check", justify="left")
    docs = erp_stats.get("documents") or {}
    orders = int(docs.get("Sales Order", 0))
    counts = snap.counts
    expected_ok = counts["won"] - len(expected_failures)
    table.add_row("opportunities won", str(counts["won"]), "")
    table.add_row("booked in the ERP", str(counts["booked"]),
                  _check(counts["booked"] == expected_ok, f"expected {expected_ok}"))
    table.add_row("ERP sales orders", str(orders),
                  _check(orders == counts["booked"], "one per booked opportunity"))
    table.add_row("written back to Salesforce", str(counts["written_back"]), "")
    table.add_row("invoiced", str(counts["invoiced"]), "")
    table.add_row("paid in full", str(counts["paid"]),
                  "some invoices are paid in part or never, by design")
    wanted = Counter(expected_failures.values())
    for category in sorted(set(wanted) | set(snap.open_dead_letters)):
        got = snap.open_dead_letters.get(category, 0)
        table.add_row(f"dead letters: {category}", str(got),
                      _check(got == wanted.get(category, 0),
                             f"designed {wanted.get(category, 0)}"))
    report = snap.report
    table.add_row("won → booked p50 / p95",
                  f"{_ms(report.won_to_booked.p50_s)} / {_ms(report.won_to_booked.p95_s)}", "")
    table.add_row("booked → invoiced p50 / p95", f"{_ms(report.booked_to_invoiced.p50_s)} / "
                  f"{_ms(report.booked_to_invoiced.p95_s)}", "")
    won = max(counts["won"], 1)
    table.add_row("touchless rate", f"{report.touchless / won:.1%}",
                  "booked with no manual requeue")
    duplicates = int((erp_stats.get("duplicates_refused") or {}).get("total", 0))
    table.add_row("ERP duplicates refused", str(duplicates), "")
    outbound = sf_stats.get("outbound") or {}
    table.add_row("notifications re-sent by Salesforce", str(outbound.get("duplicates", 0)),
                  "each enqueued once (dedupe)")
    api = sf_stats.get("api") or {}
    if api.get("used") is not None:
        table.add_row("Salesforce API calls", f"{api['used']:,} of {api.get('allocation', '?'):,}",
                      "")
    if reconciled is not None:
        reconcile_row(table, reconciled, expected_failures)
    return table


def designed(report: Report, expected_failures: dict[str, str]) -> bool:
    """Whether the disagreements are exactly the failures built into the org: each a won
    opportunity with no order, explained by its open dead letter."""
    return ({f.opportunity_id for f in report.findings} == set(expected_failures)
            and all(f.kind == WON_WITHOUT_ORDER and f.explanation
                    and f.explanation.startswith("open dead letter") for f in report.findings))


def reconcile_row(table: Table, report: Report | str,
                  expected_failures: dict[str, str]) -> None:
    """The last row: ``o2c reconcile``'s verdict on Salesforce against the ERP."""
    if isinstance(report, str):
        table.add_row("reconcile (Salesforce ↔ ERP)", "not run", _check(False, report))
        return
    note = f"{report.salesforce_calls} Salesforce + {report.erp_calls} ERP calls, " \
        f"{report.took_s:.1f} s"
    if report.agrees:
        table.add_row("reconcile (Salesforce ↔ ERP)", "agrees", _check(True, note))
        return
    ok = designed(report, expected_failures)
    label = f"only the designed failures, each in the DLQ; {note}" if ok else \
        f"{report.verdict()}; see o2c reconcile"
    table.add_row("reconcile (Salesforce ↔ ERP)", f"{len(report.findings)} disagreement(s)",
                  _check(ok, label))


def _check(ok: bool, note: str) -> str:
    return f"[green]✓[/] {note}" if ok else f"[red]✗[/] {note}"
