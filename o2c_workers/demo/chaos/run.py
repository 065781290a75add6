"""One chaos run: start the stack, play the schedule, wait for it to settle (bounded),
collect the records and judge them."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests
from rich.console import Console

from o2c_workers.demo.chaos import churn_judge, evidence, judge
from o2c_workers.demo.chaos.churn import Churner
from o2c_workers.demo.chaos.drive import Timeline, play, win
from o2c_workers.demo.chaos.faults import Injected, Injector
from o2c_workers.demo.chaos.observe import (
    Records,
    WriteBackWatch,
    collect,
    dead_letters,
    designed_failures,
    opportunities,
)
from o2c_workers.demo.chaos.plan import ChaosOptions, build_schedule
from o2c_workers.demo.chaos.replay import Replay, replay
from o2c_workers.demo.chaos.stack import Stack, started, worker_names

#: How often the settle loop asks the ``o2c`` command for dead letters, seconds.
DLQ_POLL_S = 5.0


@dataclass(frozen=True)
class Outcome:
    opts: ChaosOptions
    run_dir: str
    verdicts: list[judge.Verdict]
    faults: list[evidence.FaultCount]
    injected: list[Injected]
    figures: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)


def run(opts: ChaosOptions, console: Console) -> Outcome:
    run_dir = (opts.run_dir / time.strftime("%Y%m%d-%H%M%S")).resolve()
    console.print(f"starting Redis (AOF), o2c sandbox and the Procfile's web and worker lines; "
                  f"logs in {run_dir / 'logs'}")
    with started(opts, run_dir) as stack:
        sf = stack.sf_session()
        designed = frozenset(designed_failures(sf, stack.sf_url))
        schedule = build_schedule(opts, sorted(opportunities(sf, stack.sf_url)), worker_names(),
                                  designed=designed)
        console.print(f"chaos phase: {len(schedule.chaos_ids)} opportunities won in waves over "
                      f"{opts.chaos_s:g} s, {len(schedule.faults)} faults scheduled, "
                      f"{len(schedule.churn)} to be lost, re-opened, edited and won again "
                      f"({sum(c.invoiced for c in schedule.churn)} invoiced before the loss)")
        timeline = Timeline(started=time.monotonic())
        injector = Injector(stack, opts, sf, win=lambda ids: timeline.record(
            ids, win(sf, stack.sf_url, ids)))
        watch = WriteBackWatch(sf, stack.sf_url)
        churner = Churner(schedule.churn, sf=sf, sf_url=stack.sf_url, erp_url=stack.erp_url,
                          env=stack.fleet.env, shown=lambda: dict(watch.shown),
                          won=lambda: timeline.won_at)
        watch.start()
        churner.start()
        try:
            play(schedule, injector, timeline, sf, stack.sf_url, console)
            churner.deadline = timeline.last_fault_at + opts.settle_s
            settled_in = _settle(stack, watch, timeline, opts, console, churner)
        finally:
            churner.stop()
            watch.stop()
        watch.read_once()
        records = collect(sf, stack.sf_url, stack.erp_url, stack.fleet.env)
        played = list(churner.played.values())
        console.print("the faults off: every open dead letter requeued (o2c dlq requeue --all)")
        replayed = replay(stack.fleet.env, stack.erp_url, wait_s=opts.replay_s,
                          done=lambda: churn_judge.replay_verdict(
                              collect(sf, stack.sf_url, stack.erp_url, stack.fleet.env),
                              played, 0).ok)
        after = collect(sf, stack.sf_url, stack.erp_url, stack.fleet.env)
        _keep(run_dir, records, stack, after, churner)
    cohort = judge.Cohort(timeline.won_at, timeline.calm_ids, dict(watch.first_seen))
    counts = evidence.fault_counts(records, injector.log, reorder=opts.sf_reorder,
                                   broker=opts.broker)
    found = [*judge.verdicts(records, cohort, latency_bound_s=opts.latency_bound_s,
                             allowed=churn_judge.allowed_letters(played)),
             *churn_judge.churn_verdicts(records, played),
             churn_judge.replay_verdict(after, played, len(replayed.requeued)),
             evidence.exercised(counts)]
    figures = {**_figures(records, cohort, timeline, settled_in),
               **_churn_figures(churner, replayed)}
    return Outcome(opts, str(run_dir), found, counts, injector.log, figures)


def _churn_figures(churner: Churner, replayed: Replay) -> dict[str, Any]:
    played = list(churner.played.values())
    return {
        "churned": len(played), "churned_invoiced": sum(p.plan.invoiced for p in played),
        "churned_lost_before_booked": sum(1 for p in played
                                          if p.lost_at is not None and not p.live_at_loss),
        "churned_won_again": sum(1 for p in played if p.rewon_at is not None),
        "orders_invoiced_by_the_clerk": churner.invoices,
        "replay_requeued": len(replayed.requeued), "replay_resolved": replayed.resolved,
        "replay_failed_again": replayed.failed_again, "replay_refused": replayed.refused,
        "replay_settled_s": replayed.settled_in_s,
    }


def _settle(stack: Stack, watch: WriteBackWatch, timeline: Timeline, opts: ChaosOptions,
            console: Console, churner: Churner) -> float | None:
    """Wait until every won opportunity is booked or dead-lettered and the churn has ended
    as it must, at most ``settle_s`` after the last fault; how long it took after the last
    fault, None if it never did."""
    deadline = timeline.last_fault_at + opts.settle_s
    designed = designed_failures(stack.sf_session(), stack.sf_url)
    won = set(timeline.won_at)
    console.print(f"waiting for every opportunity to settle (at most {opts.settle_s:g} s "
                  "after the last fault)")
    while time.monotonic() < deadline:
        left = won - set(watch.first_seen)
        if len(left) <= len(designed) + len(won) // 10:
            letters = dead_letters(stack.fleet.env) or []
            parked = {judge.id18(e["trace_key"]) for e in letters if e["status"] == "open"}
            if left <= parked and churner.finished and _churn_ended(stack, churner):
                return round(time.monotonic() - timeline.last_fault_at, 1)
        time.sleep(DLQ_POLL_S)
    left = won - set(watch.first_seen)
    console.print(f"[yellow]gave up waiting: {len(left)} opportunities not written back[/]")
    return None


def _churn_ended(stack: Stack, churner: Churner) -> bool:
    """Whether every churned opportunity ends as it must (its verdicts on records now)."""
    records = collect(stack.sf_session(), stack.sf_url, stack.erp_url, stack.fleet.env)
    found = churn_judge.churn_verdicts(records, list(churner.played.values()))
    return all(v.ok for v in found)


def _keep(run_dir: Path, records: Records, stack: Stack, after: Records,
          churner: Churner) -> None:
    """The records judged (before and after the replay), the churn's log, and the ERP's
    record of calls, for a post-mortem."""
    (run_dir / "records.json").write_text(json.dumps(asdict(records), default=str))
    (run_dir / "records-after-replay.json").write_text(json.dumps(asdict(after), default=str))
    (run_dir / "churn.json").write_text(json.dumps(
        [p.as_dict() for p in churner.played.values()], default=str))
    calls = requests.get(f"{stack.erp_url}/_sandbox/calls", timeout=60).json()
    (run_dir / "erp-calls.json").write_text(json.dumps(calls))


def _figures(records: Records, cohort: judge.Cohort, timeline: Timeline,
             settled_in: float | None) -> dict[str, Any]:
    orders = judge.live_orders(records)
    dead = judge.open_dead_letters(records)
    calm = [i for i in cohort.calm_ids if i not in records.designed]
    chaos = [i for i in cohort.won_at if i not in cohort.calm_ids and i not in records.designed]
    return {
        "won": len(cohort.won_at), "won_after_last_fault": len(cohort.calm_ids),
        "designed_failures": len(records.designed), "booked": len(judge.booked(records)),
        "erp_live_orders": sum(len(v) for v in orders.values()),
        "open_dead_letters": dict(Counter(e["category"] for v in dead.values() for e in v)),
        "latency_chaos_cohort_s": _quantiles(judge.latencies(cohort, chaos)),
        "latency_calm_cohort_s": _quantiles(judge.latencies(cohort, calm)),
        "chaos_phase_s": timeline.since_start(timeline.last_fault_at),
        "settled_after_last_fault_s": settled_in,
        "erp_calls": (records.erp_stats.get("calls") or {}).get("total"),
        "salesforce_notifications_acked": (records.sf_stats.get("outbound") or {}).get("acked"),
    }


def _quantiles(values: list[float]) -> dict[str, float | None]:
    def shown(pct: float) -> float | None:
        value = judge.nearest_rank(values, pct)
        return None if value is None or value == float("inf") else round(value, 1)

    return {"count": len(values), "p50": shown(50), "p95": shown(95), "max": shown(100),
            "not_booked": sum(1 for v in values if v == float("inf"))}
