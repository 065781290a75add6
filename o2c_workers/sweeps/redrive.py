"""Re-drive stalled transactions: in flight, no progress for ``O2C_STALL_AFTER_S``, no open
dead letter (``o2c_workers.stalls``). The record's current state is read again with one
SOQL query per 200 ids, and its route's chain started from the first step: every step is
idempotent, so a chain that was only slow, not lost, is merely repeated. A transaction with
a dead letter open, or requeuing (claimed by a requeue, which publishes it, or left by one
that died, for ``o2c dlq requeue --reclaim``), is waiting on it and is never stalled, so
never re-driven.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import TYPE_CHECKING

from o2c_workers import keys
from o2c_workers.stalls import Stall, stalled_transactions
from o2c_workers.sweeps.results import Found, SweepResult
from o2c_workers.sweeps.specs import Spec, spec_of

if TYPE_CHECKING:
    from o2c_workers.atomic import Item
    from o2c_workers.sweeps.sweeper import Candidate, Progress, Sweeper

#: Ids per ``WHERE Id IN (...)`` query.
IDS_PER_QUERY = 200


def redrive(sweeper: Sweeper, *, dry_run: bool = False, progress: Progress | None = None,
            now: float | None = None) -> SweepResult:
    """Start every stalled transaction's chain again (``would_redrive`` with ``dry_run``)."""
    settings = sweeper.settings
    stalls = stalled_transactions(sweeper.redis, settings.key_prefix,
                                  stall_after_s=settings.stall_after_s, now=now)
    result = SweepResult("stalled", None, dry_run=dry_run)
    by_spec: dict[Spec, list[Stall]] = defaultdict(list)
    for stall in stalls:
        spec = spec_of(stall.trace_key)
        if spec is None:
            result.found.append(Found(stall.trace_key, "left", stall.last_progress_at))
        else:
            by_spec[spec].append(stall)
    for spec, group in by_spec.items():
        for start in range(0, len(group), IDS_PER_QUERY):
            _redrive_batch(sweeper, spec, group[start:start + IDS_PER_QUERY], result,
                           dry_run=dry_run)
            if progress is not None:
                progress("stalled", result.seen, len(stalls))
    result.finished_at = time.time()
    return result


def _redrive_batch(sweeper: Sweeper, spec: Spec, stalls: list[Stall], result: SweepResult,
                   *, dry_run: bool) -> None:
    current: dict[str, Candidate] = {}
    for page in sweeper.salesforce.query_pages(spec.by_ids([s.trace_key for s in stalls])):
        result.api_calls += 1
        for raw in page.get("records") or []:
            candidate = sweeper.candidate(spec, raw, SweepResult(spec.name, None))
            if candidate is not None:
                current[candidate.trace_key] = candidate
    items: list[Item] = []
    chosen: list[Stall] = []
    for stall in stalls:
        candidate = current.get(stall.trace_key)
        if candidate is None:
            # Gone from Salesforce, or in a state no route acts on (no longer won).
            result.found.append(Found(stall.trace_key, "left", stall.last_progress_at))
        elif dry_run:
            result.found.append(Found(stall.trace_key, "would_redrive", stall.last_progress_at,
                                      candidate.record.Name))
        else:
            guard = keys.dedupe_redrive(sweeper.prefix, stall.trace_key,
                                        round(stall.last_progress_at * 1000))
            items.append(sweeper.start_item(
                candidate, spec=spec, event="redriven", guard=guard,
                stalled_since=stall.last_progress_at,
                last_event=str(stall.last_event.get("event", ""))))
            chosen.append(stall)
    if not items:
        return
    taken = sweeper.batches.run(items, mark_ttl_s=sweeper.settings.dedupe_ttl_s)
    for stall, ok in zip(chosen, taken, strict=True):
        name = current[stall.trace_key].record.Name
        result.found.append(Found(stall.trace_key, "redriven" if ok else "already_started",
                                  stall.last_progress_at, name))
