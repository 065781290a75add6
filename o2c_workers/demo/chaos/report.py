"""The chaos run's closing tables and its JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.console import Group
from rich.table import Table

from o2c_workers.demo.chaos import evidence, judge
from o2c_workers.demo.chaos.run import Outcome


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def verdict_table(outcome: Outcome) -> Table:
    table = Table(title="o2c chaos: verdicts", title_justify="left")
    for name in ("verdict", "value", "expected", "check"):
        table.add_column(name, justify="right" if name in ("value", "expected") else "left")
    table.add_column("detail", overflow="fold")
    for v in outcome.verdicts:
        mark = "[green]✓ pass[/]" if v.ok else "[red]✗ FAIL[/]"
        table.add_row(v.name, v.value, v.expected, mark, "\n".join(v.detail[:10]))
    return table


def figures_table(outcome: Outcome) -> Table:
    f = outcome.figures
    table = Table(title="what happened", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [("opportunities won", f["won"]),
            ("  of them won after the last fault", f["won_after_last_fault"]),
            ("  of them built to fail", f["designed_failures"]),
            ("booked (ERP order, and Salesforce shows its number)", f["booked"]),
            ("live ERP sales orders", f["erp_live_orders"])]
    rows += [(f"open dead letters: {k}", n) for k, n in sorted(f["open_dead_letters"].items())]
    for cohort, key in (("won during the faults", "latency_chaos_cohort_s"),
                        ("won after the last fault", "latency_calm_cohort_s")):
        q = f[key]
        rows.append((f"won → booked, {cohort}: p50 / p95 / max",
                     f"{_s(q['p50'])} / {_s(q['p95'])} / {_s(q['max'])}"))
        rows.append((f"  not booked, {cohort}", q["not_booked"]))
    rows += [("chaos phase (to the end of the last fault)", _s(f["chaos_phase_s"])),
             ("settled after the last fault", _s(f["settled_after_last_fault_s"])
              if f["settled_after_last_fault_s"] is not None else "never (gave up)"),
             ("ERP calls", f["erp_calls"]),
             ("Salesforce notifications acknowledged", f["salesforce_notifications_acked"]),
             ("churned: lost, re-opened, edited, won again", f["churned"]),
             ("  of them invoiced before the loss (designed to fail)", f["churned_invoiced"]),
             ("  of them lost before they were booked", f["churned_lost_before_booked"]),
             ("  of them won again", f["churned_won_again"]),
             ("orders invoiced by the billing clerk", f["orders_invoiced_by_the_clerk"]),
             ("replay (faults off): dead letters requeued", f["replay_requeued"]),
             ("  resolved / failed again / refused",
              f"{f['replay_resolved']} / {f['replay_failed_again']} / {f['replay_refused']}"),
             ("  settled in", _s(f["replay_settled_s"]) if f["replay_settled_s"] is not None
              else "never (gave up)")]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def faults_table(outcome: Outcome) -> Table:
    table = Table(title="faults, as the records show them", title_justify="left")
    table.add_column("fault")
    table.add_column("count", justify="right")
    table.add_column("counted by")
    for c in outcome.faults:
        table.add_row(c.fault, str(c.count), c.source)
    return table


def tables(outcome: Outcome) -> Group:
    return Group(faults_table(outcome), figures_table(outcome), verdict_table(outcome))


def as_json(outcome: Outcome) -> dict[str, Any]:
    opts = asdict(outcome.opts)
    opts["run_dir"] = str(opts["run_dir"])
    return {"ok": outcome.ok, "options": opts, "run_dir": outcome.run_dir,
            "verdicts": judge.as_dicts(outcome.verdicts),
            "faults": evidence.as_dicts(outcome.faults),
            "injected": [entry.as_dict() for entry in outcome.injected],
            "figures": outcome.figures}
