"""``o2c report [--since 24h] [--json]``: the O2C KPIs of a period."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.table import Table

from config import ConfigError, get_settings
from o2c_workers.dlq.errors import DlqError
from o2c_workers.dlq.query import parse_since
from o2c_workers.report import Latency, Report, build_report
from o2c_workers.runtime import connect


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def report_table(report: Report) -> Table:
    period = ("every opportunity kept" if report.since is None else "opportunities won since "
              + datetime.fromtimestamp(report.since, tz=UTC).strftime("%Y-%m-%d %H:%M UTC"))
    table = Table("measure", "value", title=f"o2c report: {period}")
    for name in ("won", "booked", "written_back", "invoiced", "paid"):
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
        table.add_row(f"dead letters: {category}", f"{count} ({still_open} open)")
    return table


def report(
    since: Annotated[str | None, typer.Option(help="Opportunities won since: 30m, 2h, 3d, 1w, "
                                              "an ISO date or epoch seconds; default all.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
) -> None:
    """Opportunities won, booked, invoiced and paid; fallout and touchless rates; latencies;
    dead letters by category; retries per order."""
    console = Console()
    try:
        settings = get_settings()
        result = build_report(connect(settings.redis_url), settings.key_prefix,
                              since=parse_since(since))
    except (ConfigError, DlqError) as exc:
        raise typer.BadParameter(str(exc)) from None
    except redis.RedisError as exc:
        console.print(f"[red]cannot reach Redis at O2C_REDIS_URL: {exc}[/]")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    console.print(report_table(result))
