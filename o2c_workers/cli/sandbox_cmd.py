"""``o2c sandbox``: the Salesforce and ERP simulators (filled in by the sandbox work)."""

from __future__ import annotations

import typer


def sandbox() -> None:
    """Run the Salesforce and ERP simulators until Ctrl-C."""
    typer.echo("the sandbox is not built yet", err=True)
    raise typer.Exit(2)
