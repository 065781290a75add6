"""The ``o2c`` command: sandbox, demo, chaos run, dead letters, status, reports, resync and
reconcile."""

from __future__ import annotations

import typer

from o2c_workers.cli import (
    chaos_cmd,
    demo_cmd,
    dlq_cmd,
    reconcile_cmd,
    report_cmd,
    resync_cmd,
    sandbox_cmd,
    status_cmd,
)

cli = typer.Typer(
    name="o2c",
    help="Run and operate the o2c-workers opportunity-to-cash fleet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
)


@cli.callback()
def _root() -> None:
    """Run and operate the o2c-workers opportunity-to-cash fleet."""


cli.command("sandbox")(sandbox_cmd.sandbox)
cli.add_typer(dlq_cmd.dlq_app, name="dlq")
cli.command("demo")(demo_cmd.demo)
cli.command("chaos")(chaos_cmd.chaos)
cli.command("status")(status_cmd.status)
cli.command("report")(report_cmd.report)
cli.command("resync")(resync_cmd.resync)
cli.command("reconcile")(reconcile_cmd.reconcile)


def main() -> None:
    cli()
