"""``o2c reconcile [--since 7d] [--json] [--fix] [--dry-run]``: where Salesforce and the ERP
disagree, to the cent. Exit status 0 when they agree, 1 when they do not, 2 when it could
not tell (a bad option, Redis, Salesforce or the ERP unreachable)."""

from __future__ import annotations

import json
import time
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from config import ConfigError, get_settings
from o2c_workers.celery_app import get_app
from o2c_workers.cli.resync_cmd import check_since
from o2c_workers.dlq.query import iso
from o2c_workers.errors import O2CError
from o2c_workers.reconcile import Reconciler, Report
from o2c_workers.reconcile.findings import LABELS
from o2c_workers.runtime import connect


def findings_table(report: Report) -> Table:
    title = f"o2c reconcile since {iso(report.since)}: {report.verdict()}"
    table = Table("kind", "opportunity", "name", "orders", "what differs", "explained by",
                  "repair", title=title, show_lines=True)
    started = {(r.opportunity_id, r.action): r.outcome for r in report.repairs}
    for f in report.findings:
        repair = "people" if f.repair is None else \
            started.get((f.opportunity_id, f.repair), f.repair.replace("_", " ") + " (--fix)")
        table.add_row(LABELS[f.kind], f.opportunity_id, f.name or "", ", ".join(f.orders),
                      f.detail, f.explanation or "", repair.replace("_", " "))
    return table


def summary_table(report: Report) -> Table:
    table = Table("checked", "count", title="o2c reconcile")
    table.add_row("opportunities in scope", str(report.opportunities))
    table.add_row("Closed Won", str(report.won))
    table.add_row("ERP sales orders", str(report.orders))
    table.add_row("ERP sales invoices", str(report.invoices))
    for kind, count in report.counts.items():
        table.add_row(LABELS[kind], str(count))
    table.add_row("Salesforce API calls", str(report.salesforce_calls))
    table.add_row("ERP calls", str(report.erp_calls))
    table.add_row("took", f"{report.took_s:.1f} s")
    table.add_row("verdict", f"[green]{report.verdict()}[/]" if report.agrees
                  else f"[red]{report.verdict()}[/]")
    return table


def reconcile(
    since: Annotated[str, typer.Option(
        help="The period: opportunities and orders modified since then, an ISO time "
             "(2026-11-28T00:00Z) or 30m, 2h, 3d, 1w ago.")] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
    = False,
    fix: Annotated[bool, typer.Option(
        "--fix", help="Start the safe repairs (a missing chain, a stale write-back); list "
                      "the rest for people.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="With --fix: show what it would start, change nothing.")] = False,
) -> None:
    """Compare Salesforce with the ERP: won opportunities without an order, orders without a
    won opportunity, amounts, lines, written-back fields, duplicates.

    Exit status: 0 they agree, 1 they do not, 2 it could not tell (nothing changed)."""
    if dry_run and not fix:
        raise typer.BadParameter("--dry-run shows what --fix would do: give both",
                                 param_hint="--dry-run")
    start = check_since(since, now=time.time())
    console = Console(stderr=True)
    try:
        settings = get_settings()
        settings.require("erp_api_key", "erp_api_secret")
        client = connect(settings.redis_url)
        reconciler = Reconciler.build(settings, redis_client=client,
                                      celery_app=get_app() if fix else None)
    except (ConfigError, ValueError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    try:
        report = _run(console, reconciler, since=start, fix=fix, dry_run=dry_run)
    except redis.RedisError as exc:
        console.print(f"[red]cannot reach Redis at O2C_REDIS_URL: {exc}[/]")
        raise typer.Exit(2) from None
    except O2CError as exc:
        console.print(f"[red]reconcile could not read both systems: {exc}[/] "
                      "(nothing was changed)")
        raise typer.Exit(2) from None
    finally:
        reconciler.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        out = Console()
        if report.findings:
            out.print(findings_table(report))
        out.print(summary_table(report))
    raise typer.Exit(0 if report.agrees else 1)


def _run(console: Console, reconciler: Reconciler, *, since: float, fix: bool,
         dry_run: bool) -> Report:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=max(total, done))

        return reconciler.run(since, fix=fix, dry_run=dry_run, progress=progress)
