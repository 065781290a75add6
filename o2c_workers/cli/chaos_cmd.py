"""``o2c chaos``: the fleet as users run it, under crashes and a flaky ERP, judged from the
simulators' records and Salesforce's fields."""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from o2c_workers.demo.chaos.plan import BROKERS, ChaosOptions

RUN, FAULTS, JUDGE = "Run", "Faults", "Judging"
D = ChaosOptions()


def _opt(help_text: str, panel: str, *names: str) -> Any:
    return typer.Option(*names, help=help_text, rich_help_panel=panel)


def chaos(
    opportunities: Annotated[int, _opt("Opportunities to seed and win.", RUN)] = D.opportunities,
    seed: Annotated[int, _opt("Seed of the world, the schedule and every victim.", RUN)]
    = D.seed,
    smoke: Annotated[bool, _opt("The short run of the test suite: 50 opportunities, a 40 s "
                                "phase, every fault kind once or more.", RUN)] = False,
    chaos_s: Annotated[float | None, _opt("Length of the chaos phase, s.", RUN, "--chaos-s")]
    = None,
    node_kills: Annotated[int | None, _opt("Whole worker nodes SIGKILLed (main process and "
                                           "pool) and restarted 1 s later.", FAULTS)] = None,
    maintenance_s: Annotated[float | None, _opt("ERP maintenance window, s (0: none).",
                                                FAULTS)] = None,
    redis_restart: Annotated[bool, _opt("SIGKILL Redis once and restart it from its AOF 2 s "
                                        "later.", FAULTS)] = True,
    receiver_kill: Annotated[bool, _opt("SIGKILL one gunicorn worker mid-delivery.",
                                        FAULTS)] = True,
    broker: Annotated[str, _opt("The fleet's broker: redis (the state Redis) or rabbitmq (a "
                                "private RabbitMQ node, SIGKILLed once and started again 2 s "
                                "later; the state stays on Redis).", RUN)] = D.broker,
    churn_share: Annotated[float | None, _opt(
        "Share of the opportunities lost, re-opened, edited and won again during the run "
        f"(0: none; default {D.churn_share:g}, {ChaosOptions.smoke().churn_share:g} with "
        "--smoke).", FAULTS, "--churn-share")] = None,
    settle_s: Annotated[float | None, _opt("Longest wait after the last fault for every "
                                           "opportunity to be booked or dead-lettered, s.",
                                           JUDGE)] = None,
    latency_bound_s: Annotated[float, _opt("Bound on the p95 of won → booked for the "
                                           "opportunities won after the last fault, s.",
                                           JUDGE)] = D.latency_bound_s,
    as_json: Annotated[bool, _opt("Print the outcome as JSON (the tables go to stderr).",
                                  RUN, "--json")] = False,
    run_dir: Annotated[Path, _opt("Where each run's logs go (a folder per run).", RUN)]
    = D.run_dir,
) -> None:
    """Run the fleet as users run it, under faults, and judge its delivery.

    Starts a private Redis with AOF (appendfsync everysec), `o2c sandbox` and
    the Procfile's web line and one worker line per queue, all with shipped
    defaults. With --broker rabbitmq the broker is a private RabbitMQ node
    (quorum queues), SIGKILLed once mid-run and started again.

    Background faults, all run long: ERP 5xx (10%), a 429 rate limit, answers
    lost after the commit (2%), latency; Salesforce duplicates and reordering.

    Disruptive faults, at seeded times in the chaos phase while opportunities
    are won in waves: a pool process SIGKILLed every few seconds; whole worker
    nodes SIGKILLed and restarted 1 s later; Redis SIGKILLed and restarted 2 s
    later from its AOF; one receiver worker SIGKILLed mid-delivery; an ERP
    maintenance window. After the last fault the rest are won. Churn: a share of
    the opportunities is lost, re-opened, edited and won again, some after their
    order was invoiced (the designed cancellation_after_invoice).

    Judged from the simulators' records, Salesforce's fields and `o2c dlq list`
    alone: no duplicate order; none lost or stalled (booked or dead-lettered
    within --settle-s of the last fault); the designed failures dead-lettered
    with their category; each churned one's order cancelled and amended (or
    dead-lettered when invoiced); p95 won → booked after the last fault within
    --latency-bound-s; every fault kind seen. Then the faults go off and every
    open dead letter is requeued: all booked but the designed failures. Exit
    status 1 when any fails.
    Figures and how to read them: docs/reliability.md.
    """
    from o2c_workers.demo.chaos.report import as_json as outcome_json
    from o2c_workers.demo.chaos.report import tables
    from o2c_workers.demo.chaos.run import run

    if broker not in BROKERS:
        raise typer.BadParameter(f"one of {', '.join(BROKERS)}", param_hint="--broker")
    if churn_share is not None and not 0 <= churn_share <= 1:
        raise typer.BadParameter("a share between 0 and 1", param_hint="--churn-share")
    base = ChaosOptions.smoke() if smoke else ChaosOptions()
    changes: dict[str, Any] = {
        "opportunities": opportunities if opportunities != D.opportunities else None,
        "chaos_s": chaos_s, "node_kills": node_kills, "maintenance_s": maintenance_s,
        "settle_s": settle_s, "churn_share": churn_share}
    opts = replace(base, seed=seed, redis_restart=redis_restart, receiver_kill=receiver_kill,
                   broker=broker,
                   latency_bound_s=latency_bound_s, run_dir=run_dir,
                   **{k: v for k, v in changes.items() if v is not None})
    console = Console(stderr=as_json, highlight=False)
    # A SIGTERM (a test's timeout, a CI job cancelled) stops every process the run started.
    signal.signal(signal.SIGTERM, _terminated)
    outcome = run(opts, console)
    console.print(tables(outcome))
    text = json.dumps(outcome_json(outcome), indent=2, default=str) + "\n"
    (Path(outcome.run_dir) / "outcome.json").write_text(text)
    console.print(f"logs in {outcome.run_dir}/logs, the outcome in {outcome.run_dir}/outcome.json")
    if as_json:
        sys.stdout.write(text)
    if not outcome.ok:
        raise typer.Exit(1)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
