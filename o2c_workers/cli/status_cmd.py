"""``o2c status TRACE_KEY``: one transaction's timeline across every domain."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.table import Table

from config import ConfigError, get_settings
from o2c_workers.runtime import connect
from o2c_workers.status import transaction_status


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def duration(seconds: float) -> str:
    """``4d 3h``, ``2h 5m``, ``7m 12s``, ``42s``: the two largest units."""
    left = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2])


def status(
    trace_key: Annotated[str, typer.Argument(help="The Salesforce record id (15 or 18 "
                                             "characters) of the transaction.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
) -> None:
    """Show one transaction's timeline, milestones and dead letters."""
    console = Console()
    try:
        settings = get_settings()
        result = transaction_status(connect(settings.redis_url), settings.key_prefix,
                                    trace_key, stall_after_s=settings.stall_after_s)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    except redis.RedisError as exc:
        console.print(f"[red]cannot reach Redis at O2C_REDIS_URL: {exc}[/]")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        raise typer.Exit(0 if result["found"] else 1)
    if not result["found"]:
        console.print(f"no transaction with trace key {result['trace_key']}")
        raise typer.Exit(1)
    console.print(f"[bold]{result['trace_key']}[/]  stage: {result['stage']}")
    if result["stalled"]:
        last = result["timeline"][-1]
        console.print(f"[yellow]stalled: no progress for {duration(time.time() - last['ts'])}"
                      f" (over {duration(settings.stall_after_s)}) since {last['event']}"
                      f" at {_when(last['ts'])}, and no open dead letter[/]")
    table = Table("time (UTC)", "event", "details")
    for event in result["timeline"]:
        details = {k: v for k, v in event.items() if k not in ("ts", "event")}
        table.add_row(_when(event["ts"]), event["event"],
                      ", ".join(f"{k}={v}" for k, v in details.items()))
    console.print(table)
    for letter in result["dead_letters"]:
        console.print(f"[red]dead letter {letter['id']}[/] ({letter['status']}, "
                      f"{letter['category']}): {letter['message']}\n  → {letter['remediation']}")
