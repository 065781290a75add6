"""One transaction's story: its timeline, milestones and dead letters, by trace key."""

from __future__ import annotations

import time
from typing import Any, cast

import redis

from o2c_workers import keys, sfid, timeline
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.stalls import is_stalled

#: Stages in the order a transaction reaches them; an account has only its own.
STAGES = (timeline.SYNCED, *timeline.MILESTONES)


def normalize_trace_key(value: str) -> str:
    """Salesforce ids in either form name the same transaction."""
    return sfid.to18(value) if sfid.is_valid(value) else value


def transaction_status(client: redis.Redis, prefix: str, trace_key: str, *,
                       stall_after_s: float, now: float | None = None) -> dict[str, Any]:
    """Everything the fleet knows of one transaction, as plain JSON-able data; ``stalled``
    when it has made no progress for ``stall_after_s`` (``o2c_workers.stalls``)."""
    now = time.time() if now is None else now
    key = normalize_trace_key(trace_key)
    store = DeadLetterStore(client, prefix=prefix)
    letters = store.many(store.ids(trace_key=key, status=None))
    events = timeline.read(client, prefix, key)
    stamps = timeline.milestones(client, prefix, key)
    stage = "unknown"
    for name in STAGES:
        if name in stamps:
            stage = name
    # An outcome (skipped, cancelled) says how it ended; a later booking clears it.
    outcomes = [name for name in timeline.OUTCOMES if name in stamps]
    if outcomes:
        stage = max(outcomes, key=lambda name: stamps[name])
    # Open, or requeuing (a requeue's claim): still in the queue, so it waits on them.
    still_open = sum(not letter.status.closed for letter in letters)
    if still_open:
        stage = "dead_lettered"
    in_flight = cast("float | None", client.zscore(keys.transaction_index_active(prefix), key))
    return {
        "trace_key": key,
        "found": bool(events or stamps or letters),
        "stage": stage,
        "stalled": is_stalled(in_flight, closed=bool(timeline.CLOSING_MILESTONES & set(stamps)),
                              open_dead_letters=still_open, stall_after_s=stall_after_s,
                              now=now),
        "last_progress_at": max((e["ts"] for e in events), default=None),
        "milestones": stamps,
        "timeline": events,
        "dead_letters": [
            {"id": d.id, "status": d.status.value, "category": d.category, "task": d.task,
             "message": d.message, "remediation": d.remediation, "attempts": d.attempts,
             "last_failed_at": d.last_failed_at}
            for d in letters
        ],
    }
