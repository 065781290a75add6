"""``o2c demo``: run the whole process end to end on the bundled sandbox."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import requests
import typer
from rich.console import Console

from o2c_workers.cli.until_stopped import wait_until_stopped
from o2c_workers.demo.report import summary_table
from o2c_workers.demo.run import DemoOptions, Running, reconcile, running, watch


def demo(
    opportunities: Annotated[int, typer.Option(min=10, help="Opportunities to seed and win.")]
    = 200,
    accounts: Annotated[int, typer.Option(min=10, help="Accounts they belong to.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the generated org; same seed, same run.")]
    = 7,
    credit_hold: Annotated[int, typer.Option(help="Accounts on credit hold in the ERP.")] = 2,
    missing_tax: Annotated[int, typer.Option(help="Accounts in countries with no tax rule.")]
    = 2,
    unknown_item: Annotated[int, typer.Option(help="Opportunities with an item the ERP lacks.")]
    = 2,
    workers_per_queue: Annotated[int, typer.Option(min=1, help="Processes per queue worker.")]
    = 2,
    timeout_s: Annotated[float, typer.Option("--timeout", help="Give up watching after this "
                                             "many seconds.")] = 300.0,
    keep_running: Annotated[bool, typer.Option(help="Leave everything up at the end and print "
                                               "the Flower and sandbox URLs.")] = False,
    redis_db: Annotated[int, typer.Option(help="Redis database the demo owns (flushed at "
                                          "start).")] = 11,
    run_dir: Annotated[Path, typer.Option(help="Where logs and Flower's state go.")]
    = Path(".o2c/demo"),
) -> None:
    """Run the opportunity-to-cash process end to end on the bundled sandbox.

    Starts Redis (found or private), the Salesforce and ERP simulators, the receiver, one
    worker per queue and Flower; seeds an org (a few opportunities built to fail: credit
    hold, missing tax rule, unknown item); closes every opportunity as won so Salesforce's
    outbound messages reach the receiver; shows live progress per stage; prints what
    happened, checked against the simulators' own records; stops everything.
    """
    console = Console()
    opts = DemoOptions(opportunities=opportunities, accounts=accounts, seed=seed,
                       credit_hold=credit_hold, missing_tax=missing_tax,
                       unknown_item=unknown_item, workers_per_queue=workers_per_queue,
                       timeout_s=timeout_s, keep_running=keep_running, redis_db=redis_db,
                       run_dir=run_dir)
    console.print("starting Redis, the sandbox, the receiver, one worker per queue and Flower")
    with running(opts, console) as run:
        sandbox = run.sandbox
        console.print(f"receiver {run.receiver_url}  ERP {sandbox.erp_url}  "
                      f"Salesforce {sandbox.sf_url}  Flower {run.flower_url}")
        session = sandbox.salesforce.session()
        won_at = time.time()
        won = session.post(f"{sandbox.sf_url}/_sandbox/opportunities/win",
                           json={"ids": "all"}, timeout=60)
        won.raise_for_status()
        console.print(f"closed {opportunities} opportunities as won; Salesforce is sending "
                      "its outbound messages")
        snap = watch(run, opts, console)
        erp_stats = requests.get(f"{sandbox.erp_url}/_sandbox/stats", timeout=10).json()
        sf_stats = session.get(f"{sandbox.sf_url}/_sandbox/stats", timeout=10).json()
        console.print("reconciling Salesforce with the ERP (o2c reconcile)")
        reconciled = reconcile(run, since=won_at - 60)
        console.print(summary_table(snap, expected_failures=sandbox.world.expected_failures,
                                    erp_stats=erp_stats, sf_stats=sf_stats,
                                    reconciled=reconciled))
        _hint(run, console)
        if keep_running:
            _hold(run, console)
    console.print("stopped cleanly")


def _hint(run: Running, console: Console) -> None:
    """How to look closer: the same records, through the o2c command."""
    if run.redis.started_here and not run.keep_running:
        console.print("the demo's private Redis stops with it; run with --keep-running to "
                      "inspect transactions and dead letters afterwards")
        return
    sample = next(iter(run.sandbox.world.expected_failures), None) or \
        run.sandbox.world.opportunity_ids[0]
    url = run.env["O2C_REDIS_URL"]
    # As the demo was started (`make demo` runs .venv/bin/o2c), so the lines paste as they are.
    o2c = sys.argv[0] if sys.argv and sys.argv[0].endswith("o2c") else "o2c"
    console.print(f"look closer:\n  O2C_REDIS_URL={url} {o2c} status {sample}\n"
                  f"  O2C_REDIS_URL={url} {o2c} dlq list\n  O2C_REDIS_URL={url} {o2c} report")


def _hold(run: Running, console: Console) -> None:
    user, password = run.flower_auth.split(":", 1)
    console.print(f"""
[bold]Everything is still running[/] (Ctrl-C stops it):
  Flower      {run.flower_url}   user {user}  password {password}
  receiver    {run.receiver_url}
  ERP         {run.sandbox.erp_url}/_sandbox/stats
  Salesforce  {run.sandbox.sf_url}/_sandbox/stats   (CA: {run.sandbox.ca_file})
  Redis       {run.env["O2C_REDIS_URL"]}
To use the o2c command against this run, export:
  O2C_REDIS_URL={run.env["O2C_REDIS_URL"]}""")
    try:
        wait_until_stopped()
    except KeyboardInterrupt:  # Ctrl-C before the handlers were set
        pass
    console.print("stopping")
