"""One run of every sweep, under the fleet's lease: the record sweeps, then the re-drive
of stalled transactions; each successful sweep's figures are kept for reports and metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from redis import Redis

from o2c_workers.sweeps import redrive, state
from o2c_workers.sweeps.results import RunResult, SweepResult
from o2c_workers.sweeps.sweeper import Progress, Sweeper

log = logging.getLogger("o2c.sweep")


def run_sweeps(sweeper: Sweeper, *, since: float | None = None, dry_run: bool = False,
               progress: Progress | None = None) -> RunResult:
    """Every sweep once, holding the fleet's lease (``SweepBusy`` if another holds it).

    ``since`` (``o2c resync``) sweeps from that time instead of the watermarks; it moves
    a watermark only when it starts at or before it, so no gap is ever skipped.
    """
    result = RunResult()
    with state.Lease(sweeper.redis, sweeper.prefix, ttl_s=sweeper.lease_ttl_s) as lease:
        for spec in sweeper.specs():
            result.sweeps.append(kept(sweeper.redis, sweeper.prefix, spec.name, partial(
                sweeper.sweep, spec, since=since, dry_run=dry_run, progress=progress,
                lease=lease)))
        result.sweeps.append(kept(sweeper.redis, sweeper.prefix, "stalled", partial(
            redrive.redrive, sweeper, dry_run=dry_run, progress=progress)))
    result.api_usage = sweeper.salesforce.api_usage()
    return result


def kept(client: Redis, prefix: str, sweep: str, action: Callable[[], SweepResult]
         ) -> SweepResult:
    """Run one sweep (or poll of the change feed) and keep its figures (or its failure,
    then raise)."""
    try:
        outcome = action()
    except Exception as exc:
        state.record_failure(client, prefix, sweep, f"{type(exc).__name__}: {exc}")
        raise
    if not outcome.dry_run:
        state.record_success(client, prefix, outcome)
    log.info("sweep %s: %d seen, %d started, %d API call(s)", sweep, outcome.seen,
             outcome.started, outcome.api_calls,
             extra={"sweep": sweep, "outcomes": outcome.counts})
    return outcome
