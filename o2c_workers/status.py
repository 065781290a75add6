"""One transaction's story: its timeline, milestones and dead letters, by trace key."""

from __future__ import annotations

from typing import Any

import redis

from o2c_workers import sfid, timeline
from o2c_workers.dlq import DeadLetterStore, Status


def normalize_trace_key(value: str) -> str:
    """Salesforce ids in either form name the same transaction."""
    return sfid.to18(value) if sfid.is_valid(value) else value


def transaction_status(client: redis.Redis, prefix: str, trace_key: str) -> dict[str, Any]:
    """Everything the fleet knows of one transaction, as plain JSON-able data."""
    key = normalize_trace_key(trace_key)
    store = DeadLetterStore(client, prefix=prefix)
    letters = store.many(store.ids(trace_key=key, status=None))
    events = timeline.read(client, prefix, key)
    stamps = timeline.milestones(client, prefix, key)
    stage = "unknown"
    for name in ("won", "booked", "written_back", "invoiced", "paid"):
        if name in stamps:
            stage = name
    if any(letter.status is Status.OPEN for letter in letters):
        stage = "dead_lettered"
    return {
        "trace_key": key,
        "found": bool(events or stamps or letters),
        "stage": stage,
        "milestones": stamps,
        "timeline": events,
        "dead_letters": [
            {"id": d.id, "status": d.status.value, "category": d.category, "task": d.task,
             "message": d.message, "remediation": d.remediation, "attempts": d.attempts,
             "last_failed_at": d.last_failed_at}
            for d in letters
        ],
    }
