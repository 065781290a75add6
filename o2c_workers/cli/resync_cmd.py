"""``o2c resync --since 2026-11-28T00:00Z [--dry-run] [--json] [--no-erp-feed]``: after an
outage, run the sweeps from a given time (the Salesforce sweeps, then the ERP change feed),
and say what was started and what was already in hand."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from config import ConfigError, get_settings
from o2c_workers.celery_app import get_app
from o2c_workers.dlq.errors import DlqError
from o2c_workers.dlq.query import parse_since
from o2c_workers.erp import build_adapter
from o2c_workers.errors import O2CError
from o2c_workers.runtime import connect
from o2c_workers.salesforce import build_salesforce
from o2c_workers.sweeps.erp_feed import ErpFeed
from o2c_workers.sweeps.results import RunResult, SweepResult
from o2c_workers.sweeps.run import run_sweeps
from o2c_workers.sweeps.state import SweepBusy
from o2c_workers.sweeps.sweeper import Sweeper

#: Columns of the summary, and the outcomes each counts.
COLUMNS = (("started", ("started", "redriven")), ("would start", ("would_start", "would_redrive")),
           ("running", ("running", "already_started")), ("done", ("done",)),
           ("dead-lettered", ("dead_lettered",)), ("left alone", ("invalid", "unrouted", "left")))


def check_since(value: str, *, now: float) -> float:
    """``--since`` as epoch seconds, or a clear error for a bad or future time."""
    try:
        since = parse_since(value, now=now)
    except DlqError as exc:
        raise typer.BadParameter(f"{value!r} is not a time: use an ISO time such as "
                                 "2026-11-28T00:00Z, or 30m, 2h, 3d, 1w ago",
                                 param_hint="--since") from exc
    if since is None:
        raise typer.BadParameter("give the time to sweep from", param_hint="--since")
    if since > now:
        raise typer.BadParameter(f"{_when(since)} is in the future", param_hint="--since")
    return since


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def summary_table(result: RunResult, *, since: float, feed: SweepResult | None = None
                  ) -> Table:
    dry = any(s.dry_run for s in result.sweeps)
    title = (f"o2c resync {'--dry-run ' if dry else ''}since {_when(since)}: "
             f"{result.api_calls} Salesforce API call(s)"
             + ("" if feed is None else f", {feed.api_calls} ERP call(s)"))
    table = Table("sweep", "seen", *(name for name, _ in COLUMNS), "API calls",
                  "watermark", title=title)
    for sweep in [*result.sweeps, *([] if feed is None else [feed])]:
        counts = sweep.counts
        table.add_row(sweep.sweep, str(sweep.seen),
                      *(str(sum(counts.get(o, 0) for o in outcomes)) for _, outcomes in COLUMNS),
                      str(sweep.api_calls), _when(sweep.watermark))
    return table


def records_table(result: RunResult, feed: SweepResult | None = None) -> Table:
    table = Table("sweep", "record", "name", "modified (UTC)", "outcome",
                  title="what the sweeps found")
    for sweep in [*result.sweeps, *([] if feed is None else [feed])]:
        for found in sweep.found:
            table.add_row(sweep.sweep, found.trace_key, found.name or "", _when(found.modified_at),
                          found.outcome.replace("_", " "))
    return table


def resync(
    since: Annotated[str, typer.Option(
        help="Sweep what changed since then: an ISO time (2026-11-28T00:00Z), or 30m, 2h, "
             "3d, 1w ago.", show_default=False)],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List what would be started; start nothing, move no watermark.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
    = False,
    erp_feed: Annotated[bool, typer.Option(
        "--erp-feed/--no-erp-feed",
        help="Also poll the ERP's change feed from --since (invoices, payments and order "
             "status changes whose webhooks were lost).")] = True,
) -> None:
    """Run the sweeps from a given time (after an outage): Closed Won opportunities without
    an ERP order, changed accounts and stalled transactions from Salesforce, then the ERP's
    invoices, payments and order changes; each started once."""
    start = check_since(since, now=time.time())
    console = Console(stderr=as_json)
    try:
        settings = get_settings()
        client = connect(settings.redis_url)
        salesforce = build_salesforce(settings)
        sweeper = Sweeper.build(settings, redis_client=client, salesforce=salesforce,
                                celery_app=get_app())
        erp = build_adapter(settings, client) if erp_feed else None
        feed = None if erp is None else ErpFeed.build(settings, redis_client=client, erp=erp,
                                                      celery_app=get_app())
    except (ConfigError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    fed: SweepResult | None = None
    try:
        result = _run(console, sweeper, since=start, dry_run=dry_run, quiet=as_json)
        if feed is not None:
            fed = _poll(console, feed, since=start, dry_run=dry_run, quiet=as_json)
    except SweepBusy as exc:
        console.print(f"[yellow]{exc}[/]")
        raise typer.Exit(1) from None
    except redis.RedisError as exc:
        console.print(f"[red]cannot reach Redis at O2C_REDIS_URL: {exc}[/]")
        raise typer.Exit(2) from None
    except O2CError as exc:
        console.print(f"[red]the sweep stopped: {exc}[/] (nothing after the last page was "
                      "started; run it again)")
        raise typer.Exit(2) from None
    finally:
        salesforce.close()
        if erp is not None:
            erp.close()
    if as_json:
        typer.echo(json.dumps({"since": start, **result.as_dict(records=dry_run),
                               "erp_feed": None if fed is None else fed.as_dict(
                                   records=dry_run)}, indent=2))
        return
    if dry_run:
        console.print(records_table(result, fed))
    console.print(summary_table(result, since=start, feed=fed))


def _bar(console: Console, quiet: bool) -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, console=console, transient=True, disable=quiet)


def _run(console: Console, sweeper: Sweeper, *, since: float, dry_run: bool,
         quiet: bool) -> RunResult:
    with _bar(console, quiet) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(sweep: str, done: int, total: int) -> None:
            if sweep not in tasks:
                tasks[sweep] = bar.add_task(sweep, total=total)
            bar.update(tasks[sweep], completed=done, total=max(total, done))

        return run_sweeps(sweeper, since=since, dry_run=dry_run, progress=progress)


def _poll(console: Console, feed: ErpFeed, *, since: float, dry_run: bool,
          quiet: bool) -> SweepResult:
    """The change feed from ``since``: the ERP says nothing of how many will come, so the
    bar counts documents as they are taken in."""
    with _bar(console, quiet) as bar:
        task = bar.add_task("erp_feed", total=None)

        def progress(sweep: str, done: int, total: int) -> None:
            bar.update(task, completed=done)

        return feed.run(since=since, dry_run=dry_run, progress=progress)
