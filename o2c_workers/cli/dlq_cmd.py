"""``o2c dlq``: list, inspect, edit, requeue, purge and export dead letters.

Connects with ``O2C_REDIS_URL`` and ``O2C_KEY_PREFIX``; every command is a thin layer over
``o2c_workers.dlq.ops``.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import click
import redis
import typer
from rich.console import Console
from rich.progress import Progress
from rich.syntax import Syntax
from rich.table import Table

from config import ConfigError, load_settings
from o2c_workers.dlq import ops
from o2c_workers.dlq.errors import DlqError
from o2c_workers.dlq.models import Status
from o2c_workers.dlq.query import Filter, age_text, iso
from o2c_workers.infrastructure import is_infrastructure
from o2c_workers.receiver.replan import build_dlq
from o2c_workers.redact import redact_text

dlq_app = typer.Typer(name="dlq", no_args_is_help=True, add_completion=False,
                      rich_markup_mode="markdown",
                      help="List, inspect, edit, requeue, purge and export dead letters.")
out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)

FILTERS = "Filters"
Category = Annotated[str | None, typer.Option(help="Error category (credit_hold, exhausted, "
                                              "invalid_payload, unrouted, auth, ...).",
                                              rich_help_panel=FILTERS)]
Domain = Annotated[str | None, typer.Option(help="Domain (customer, pricing, order, invoice, "
                                            "payment, receiver).", rich_help_panel=FILTERS)]
Since = Annotated[str | None, typer.Option(help="Last failed since: 30m, 2h, 3d, 1w or an "
                                           "ISO date.", rich_help_panel=FILTERS)]
TraceKey = Annotated[str | None, typer.Option("--trace-key", help="The transaction's trace "
                                              "key (the Opportunity id).",
                                              rich_help_panel=FILTERS)]
StatusOpt = Annotated[str, typer.Option(help="open, requeuing, requeued, resolved, purged or "
                                        "all.",
                                        rich_help_panel=FILTERS)]
AsJson = Annotated[bool, typer.Option("--json", help="JSON instead of a table.")]
Ids = Annotated[list[str] | None, typer.Argument(help="Entry ids.", show_default=False)]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@contextmanager
def _connected() -> Iterator[ops.Dlq]:
    """The operations' context, with clear errors for bad settings and an absent Redis."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    where = redact_text(settings.redis_url)
    try:
        dlq = build_dlq(settings, actor=_actor())
        dlq.store.client.ping()
        yield dlq
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        err.print(f"[red]error:[/] cannot reach Redis at {where} (O2C_REDIS_URL): {exc}")
        raise typer.Exit(2) from None
    except redis.RedisError as exc:
        if not is_infrastructure(exc):
            raise
        # Out of memory, a replica, a failed save: each entry's change is one script, so
        # the refused one is unchanged, and running the command again finishes the rest.
        err.print(f"[red]error:[/] Redis at {where} refuses writes now "
                  f"({type(exc).__name__}: {exc}); the command stopped at the change it "
                  "refused, which was not made: run it again once Redis takes writes")
        raise typer.Exit(2) from None
    except DlqError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from None


def _where(status: str, category: str | None, domain: str | None, since: str | None,
           trace_key: str | None) -> Filter:
    return Filter.build(status=status, category=category, domain=domain, since=since,
                        trace_key=trace_key)


def _has_filter(*values: str | None) -> bool:
    return any(values)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@dlq_app.command("list")
def list_cmd(category: Category = None, domain: Domain = None, since: Since = None,
             trace_key: TraceKey = None, status: StatusOpt = "open",
             limit: Annotated[int, typer.Option(help="Entries per page (at most 1000).")] = 50,
             offset: Annotated[int, typer.Option(help="Skip this many first.")] = 0,
             newest: Annotated[bool, typer.Option(help="Newest failure first.")] = False,
             as_json: AsJson = False) -> None:
    """List dead letters, oldest failure first."""
    with _connected() as dlq:
        where = _where(status, category, domain, since, trace_key)
        listing = ops.list_entries(dlq, where, offset=offset, limit=limit, newest_first=newest)
        claimed = dlq.store.count(status=Status.REQUEUING) if where.status is Status.OPEN else 0
    rows = [ops.summary(e) for e in listing.entries]
    page = listing.page
    if as_json:
        _print_json({"entries": rows, "total": page.total, "offset": page.offset,
                     "next_offset": page.next_offset,
                     **({"requeuing": claimed} if where.status is Status.OPEN else {})})
        return
    table = Table(title=f"dead letters ({where.describe()['status']}): {len(rows)} of "
                        f"{page.total}", title_justify="left")
    # The status is in the title and the task in `o2c dlq show`: the message gets the room.
    for name in ("id", "age", "category", "domain", "trace key"):
        table.add_column(name, no_wrap=True)
    table.add_column("message", overflow="fold", min_width=20)
    for r in rows:
        table.add_row(r["id"], age_text(r["age_s"]), r["category"], r["domain"],
                      r["trace_key"], r["message"])
    out.print(table)
    if page.next_offset is not None:
        out.print(f"more: --offset {page.next_offset}")
    if claimed:
        # A requeue to RabbitMQ claims an entry before it publishes: one still claimed
        # after it finished died between its claim and its mark.
        out.print(_requeuing_hint(claimed))


def _requeuing_hint(claimed: int) -> str:
    return (f"[yellow]{claimed} requeuing[/]: claimed by a requeue that has not marked them "
            "requeued (in progress, or it died). See them with o2c dlq list --status "
            "requeuing; requeue them again with o2c dlq requeue --reclaim.")


@dlq_app.command()
def show(entry_id: Annotated[str, typer.Argument(help="Entry id.")],
         as_json: AsJson = False) -> None:
    """Everything about one dead letter, and its audit history."""
    with _connected() as dlq:
        data = ops.as_json(ops.show(dlq, entry_id))
        history = ops.history(dlq, entry_id)
    if as_json:
        _print_json({"entry": data, "history": history})
        return
    table = Table(show_header=False, box=None)
    for name in ("id", "status", "trace_key", "domain", "task", "chain", "category",
                 "error_class", "message", "remediation", "attempts", "first_failed_at_iso",
                 "last_failed_at_iso", "source", "requeued_task_id", "requeued_at_iso",
                 "resolved_by", "resolved_at_iso", "purged_at_iso", "edited_at_iso"):
        value = data.get(name)
        if value not in (None, "", []):
            table.add_row(name.removesuffix("_iso"), str(value))
    out.print(table)
    out.print("[bold]payload[/]")
    out.print(Syntax(json.dumps(data["payload"], indent=2, default=str), "json"))
    if data.get("original_payload") is not None:
        out.print("[bold]original payload[/] (before edits)")
        out.print(Syntax(json.dumps(data["original_payload"], indent=2, default=str), "json"))
    if data.get("traceback"):
        out.print("[bold]traceback[/]")
        out.print(data["traceback"].rstrip(), markup=False)
    for record in history:
        out.print(f"{iso(record['at'])}  {record['action']}  by {record['actor']}  "
                  f"{json.dumps(record['detail'])}", markup=False)


def _report(report: ops.Report) -> None:
    verb = {"requeue": "requeued", "purge": "purged"}[report.action]
    head = f"would be {verb}" if report.dry_run else verb
    if report.done:
        table = Table(title=f"{len(report.done)} {head}", title_justify="left")
        columns = [k for k in report.done[0] if k != "trace_key"] + ["trace_key"]
        for name in columns:
            table.add_column(name, no_wrap=True)
        for row in report.done:
            table.add_row(*(str(row.get(c, "")) for c in columns))
        out.print(table)
    else:
        out.print(f"0 {head}")
    for row in report.refused:
        out.print(f"[yellow]refused[/] {row['id']}: {row['reason']}")


def _bulk(dlq: ops.Dlq, ids: list[str] | None, everything: bool, where: Filter,
          has_filter: bool) -> list[str]:
    if not ids and not everything and not has_filter:
        raise DlqError("name entry ids, give a filter, or --all")
    return ops.select(dlq, ids, where)


@dlq_app.command()
def requeue(ids: Ids = None,
            everything: Annotated[bool, typer.Option("--all", help="Every entry matching the "
                                                     "filters (all open ones by default).")]
            = False,
            category: Category = None, domain: Domain = None, since: Since = None,
            trace_key: TraceKey = None, status: StatusOpt = "open",
            dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be "
                                                  "requeued; change nothing.")] = False,
            reclaim: Annotated[bool, typer.Option(
                "--reclaim", help="Also requeue entries left 'requeuing' by a requeue to "
                                  "RabbitMQ that died after its claim (its message may be on "
                                  "its queue already: the step may run twice).")] = False,
            as_json: AsJson = False) -> None:
    """Put dead letters back on their queues (each atomically, at most once)."""
    with _connected() as dlq:
        where = _where(status, category, domain, since, trace_key)
        chosen = _bulk(dlq, ids, everything, where,
                       _has_filter(category, domain, since, trace_key))
        if not chosen:
            # A quiet day for a cron job: nothing to do is not a failure.
            if as_json:
                _print_json(ops.Report("requeue", dry_run).as_dict())
            else:
                out.print(f"nothing to requeue: no {where.describe()['status']} dead letter "
                          "matches")
            return
        with Progress(console=err, transient=True, disable=len(chosen) < 2) as bar:
            task = bar.add_task("requeueing", total=len(chosen))
            report = ops.requeue(dlq, chosen, dry_run=dry_run, reclaim=reclaim,
                                 progress=lambda n: bar.advance(task, n))
    if as_json:
        _print_json(report.as_dict())
    else:
        _report(report)
    if report.refused and not report.done:
        raise typer.Exit(1)


@dlq_app.command()
def edit(entry_id: Annotated[str, typer.Argument(help="Entry id.")],
         sets: Annotated[list[str] | None, typer.Option(
             "--set", help="field=value, dotted paths allowed (record.Amount=45000 edits a "
                           "receiver entry's notification); repeatable. Without it, $EDITOR "
                           "opens the payload.")] = None) -> None:
    """Change a dead letter's payload; it is validated before it is saved."""
    with _connected() as dlq:
        if sets:
            entry = ops.edit(dlq, entry_id, sets=sets)
        else:
            current = ops.show(dlq, entry_id)
            text = click.edit(json.dumps(current.payload, indent=2) + "\n", extension=".json")
            if text is None:
                out.print("no change: the payload was not saved in the editor")
                return
            try:
                payload = json.loads(text)
            except ValueError as exc:
                raise DlqError(f"the edited payload is not JSON ({exc}); nothing saved") \
                    from None
            entry = ops.edit(dlq, entry_id, payload=payload)
    out.print(f"edited {entry.id} (rev {entry.rev}); the original payload is kept for audit")


@dlq_app.command()
def purge(ids: Ids = None,
          everything: Annotated[bool, typer.Option("--all", help="Every entry matching the "
                                                   "filters (all open ones by default).")]
          = False,
          category: Category = None, domain: Domain = None, since: Since = None,
          trace_key: TraceKey = None,
          reason: Annotated[str, typer.Option(help="Why, for the audit record.")] = "",
          yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
          dry_run: Annotated[bool, typer.Option("--dry-run")] = False) -> None:
    """Close open dead letters without running them; each leaves an audit record."""
    with _connected() as dlq:
        where = _where("open", category, domain, since, trace_key)
        chosen = _bulk(dlq, ids, everything, where,
                       _has_filter(category, domain, since, trace_key))
        if not chosen:
            out.print("nothing to purge")
            return
        if not (yes or dry_run) and not typer.confirm(
                f"Purge {len(chosen)} dead letter(s)? They will not be run", default=False):
            err.print("aborted; nothing purged")
            raise typer.Exit(1)
        report = ops.purge(dlq, chosen, reason=reason, dry_run=dry_run)
    _report(report)


@dlq_app.command()
def export(category: Category = None, domain: Domain = None, since: Since = None,
           trace_key: TraceKey = None, status: StatusOpt = "all",
           output: Annotated[Path | None, typer.Option("--output", "-o",
                                                       help="File (default stdout).")] = None
           ) -> None:
    """Write dead letters as JSON lines (secrets masked)."""
    with _connected() as dlq:
        where = _where(status, category, domain, since, trace_key)
        if output is None:
            count = ops.export(dlq, where, sys.stdout)
        else:
            with output.open("w", encoding="utf-8") as fh:
                count = ops.export(dlq, where, fh)
    err.print(f"exported {count} dead letter(s)" + (f" to {output}" if output else ""))


@dlq_app.command()
def stats(as_json: AsJson = False) -> None:
    """Counts by status, open ones by category and domain, and the oldest open entry."""
    with _connected() as dlq:
        data = ops.stats(dlq)
    if as_json:
        _print_json(data)
        return
    out.print("  ".join(f"{name}: {n}" for name, n in data["by_status"].items()))
    for title, counts in (("category", data["open_by_category"]),
                          ("domain", data["open_by_domain"])):
        if not counts:
            continue
        table = Table(title=f"open by {title}", title_justify="left")
        table.add_column(title)
        table.add_column("open", justify="right")
        for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            table.add_row(name, str(n))
        out.print(table)
    oldest = data["oldest_open"]
    if oldest:
        out.print(f"oldest open: {oldest['id']} ({oldest['category']}, {oldest['domain']}, "
                  f"trace key {oldest['trace_key']}), failed {age_text(oldest['age_s'])} ago")
    else:
        out.print("no open dead letters")
    if claimed := data["by_status"].get(Status.REQUEUING.value, 0):
        out.print(_requeuing_hint(claimed))

