"""``o2c report [--since 24h] [--json]``: the O2C KPIs of a period; ``o2c report --stalled
[--limit N] [--json]``: the transactions that stopped moving."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import redis
import typer
from rich.console import Console
from rich.table import Table

from config import ConfigError, get_settings
from o2c_workers.cli.status_cmd import duration
from o2c_workers.dlq.errors import DlqError
from o2c_workers.dlq.query import parse_since
from o2c_workers.report import Latency, Report, build_report
from o2c_workers.runtime import connect
from o2c_workers.stalls import Stall, requeuing_dead_letters, stalled_transactions
from o2c_workers.timeline import MILESTONES, OUTCOMES


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def report_table(report: Report) -> Table:
    period = ("every opportunity kept" if report.since is None else "opportunities won since "
              + datetime.fromtimestamp(report.since, tz=UTC).strftime("%Y-%m-%d %H:%M UTC"))
    table = Table("measure", "value", title=f"o2c report: {period}")
    for name in (*MILESTONES, *OUTCOMES):
        table.add_row(f"opportunities {name.replace('_', ' ')}", str(report.counts[name]))
    table.add_row("order fallout rate", f"{_pct(report.fallout_rate)} ({report.fallout})")
    table.add_row("touchless rate", f"{_pct(report.touchless_rate)} ({report.touchless})")
    latencies: tuple[tuple[str, Latency], ...] = (
        ("won → booked", report.won_to_booked),
        ("booked → invoiced", report.booked_to_invoiced))
    for label, latency in latencies:
        table.add_row(f"{label} p50", _ms(latency.p50_s))
        table.add_row(f"{label} p95", _ms(latency.p95_s))
    per_order = report.retries_per_order
    table.add_row("retries per order",
                  "-" if per_order is None else f"{per_order:.2f} (max {report.max_retries})")
    table.add_row("manual requeues", str(report.requeues))
    for category, count in report.dead_letters_by_category.items():
        still_open = report.open_dead_letters_by_category.get(category, 0)
        requeuing = report.requeuing_dead_letters_by_category.get(category, 0)
        table.add_row(f"dead letters: {category}", f"{count} ({still_open} open"
                      + (f", {requeuing} requeuing)" if requeuing else ")"))
    for name, sweep in report.sweeps.items():
        add_sweep_rows(table, name, sweep)
    return table


def add_sweep_rows(table: Table, name: str, sweep: dict[str, Any]) -> None:
    """A sweep's last successful run, its watermark and its age, and a failure since."""
    finished = sweep.get("finished_at")
    table.add_row(f"sweep {name}: last success",
                  "never" if finished is None else f"{_when(finished)} UTC: {sweep['seen']} "
                  f"seen, {sweep['started']} started, {sweep['api_calls']} API call(s)")
    if sweep.get("watermark") is not None:
        table.add_row(f"sweep {name}: watermark", f"{_when(sweep['watermark'])} UTC "
                      f"({duration(sweep['watermark_age_s'])} ago)")
    if sweep.get("failed_at") is not None:
        table.add_row(f"sweep {name}: failing", f"since {_when(sweep['failed_at'])} UTC: "
                      f"{sweep.get('error')}")


def stalled_table(stalls: list[Stall], *, stall_after_s: int) -> Table:
    table = Table("trace key", "last progress (UTC)", "stalled for", "last event", "task",
                  title=f"o2c report: {len(stalls)} stalled (no progress for over "
                        f"{duration(stall_after_s)}, no dead letter open or requeuing)")
    for stall in stalls:
        table.add_row(stall.trace_key, _when(stall.last_progress_at),
                      duration(stall.stalled_for_s), str(stall.last_event.get("event", "")),
                      str(stall.last_event.get("task", "")))
    return table


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def report(
    since: Annotated[str | None, typer.Option(help="Opportunities won since: 30m, 2h, 3d, 1w, "
                                              "an ISO date or epoch seconds; default all.")]
    = None,
    stalled: Annotated[bool, typer.Option(
        "--stalled", help="List the transactions with no progress for O2C_STALL_AFTER_S "
                          "and no dead letter open or requeuing, longest stalled first, "
                          "instead.")] = False,
    limit: Annotated[int | None, typer.Option(
        min=1, help="With --stalled: list at most this many.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
) -> None:
    """Opportunities won, booked, invoiced and paid; fallout and touchless rates; latencies;
    dead letters by category; retries per order. Or, with --stalled, what stopped moving."""
    if stalled and since is not None:
        raise typer.BadParameter("--stalled lists what is stalled now, whenever it was won; "
                                 "it takes no --since", param_hint="--since")
    if limit is not None and not stalled:
        raise typer.BadParameter("--limit goes with --stalled", param_hint="--limit")
    console = Console()
    try:
        settings = get_settings()
        client = connect(settings.redis_url)
        if stalled:
            _print_stalled(console, stalled_transactions(
                client, settings.key_prefix, stall_after_s=settings.stall_after_s,
                limit=limit), stall_after_s=settings.stall_after_s, as_json=as_json,
                requeuing=requeuing_dead_letters(client, settings.key_prefix))
            return
        result = build_report(client, settings.key_prefix, since=parse_since(since))
    except (ConfigError, DlqError) as exc:
        raise typer.BadParameter(str(exc)) from None
    except redis.RedisError as exc:
        console.print(f"[red]cannot reach Redis at O2C_REDIS_URL: {exc}[/]")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    console.print(report_table(result))


def _print_stalled(console: Console, stalls: list[Stall], *, stall_after_s: int,
                   as_json: bool, requeuing: int) -> None:
    """The stalled, and the dead letters left requeuing: their transactions wait on them,
    so they are not stalled, and nothing moves them but a person."""
    if as_json:
        typer.echo(json.dumps({"stall_after_s": stall_after_s, "count": len(stalls),
                               "stalled": [s.as_dict() for s in stalls],
                               "requeuing": requeuing}, indent=2))
        return
    console.print(stalled_table(stalls, stall_after_s=stall_after_s))
    if requeuing:
        console.print(f"{requeuing} dead letter(s) left requeuing: claimed by a requeue that "
                      "has not marked them requeued (one that died after its claim, unless it "
                      "is running now); see o2c dlq list --status requeuing, requeue them "
                      "with o2c dlq requeue --reclaim")
