"""Every step of a transaction appends to its trace key's timeline in Redis."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from o2c_workers import keys

#: How long a transaction's timeline and milestones are kept.
TIMELINE_TTL_S = 30 * 24 * 3600


def record(
    client: redis.Redis, prefix: str, trace_key: str, event: str, *,
    milestone: str | None = None, at: float | None = None, **details: Any,
) -> dict[str, Any]:
    """Append ``event`` with its details; a milestone also stamps the transaction hash."""
    now = time.time() if at is None else at
    entry = {"ts": now, "event": event, **{k: v for k, v in details.items() if v is not None}}
    tl_key = keys.timeline(prefix, trace_key)
    txn_key = keys.transaction(prefix, trace_key)
    pipe = client.pipeline(transaction=True)
    pipe.rpush(tl_key, json.dumps(entry, default=str))
    pipe.expire(tl_key, TIMELINE_TTL_S)
    if milestone is not None:
        pipe.hsetnx(txn_key, milestone, repr(now))
        pipe.expire(txn_key, TIMELINE_TTL_S)
        if milestone == "won":
            pipe.zadd(keys.transaction_index_won(prefix), {trace_key: now}, nx=True)
    pipe.execute()
    return entry


def read(client: redis.Redis, prefix: str, trace_key: str) -> list[dict[str, Any]]:
    raw = client.lrange(keys.timeline(prefix, trace_key), 0, -1)
    return [json.loads(item) for item in raw]


def milestones(client: redis.Redis, prefix: str, trace_key: str) -> dict[str, float]:
    raw = client.hgetall(keys.transaction(prefix, trace_key))
    return {k.decode(): float(v) for k, v in raw.items()}


def bump(client: redis.Redis, prefix: str, trace_key: str, counter: str, by: int = 1) -> None:
    """Count something about a transaction (requeues, retries)."""
    txn_key = keys.transaction(prefix, trace_key)
    pipe = client.pipeline(transaction=True)
    pipe.hincrby(txn_key, counter, by)
    pipe.expire(txn_key, TIMELINE_TTL_S)
    pipe.execute()
