"""Every step of a transaction appends to its trace key's timeline in Redis."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import orjson
import redis

from o2c_workers import keys

#: How long a transaction's timeline and milestones are kept.
TIMELINE_TTL_S = 30 * 24 * 3600


def record_ops(
    prefix: str, trace_key: str, event: str, *, milestone: str | None = None,
    at: float | None = None, **details: Any,
) -> list[list[Any]]:
    """The writes that append ``event``; a milestone also stamps the transaction hash once."""
    now = time.time() if at is None else at
    entry = {"ts": now, "event": event, **{k: v for k, v in details.items() if v is not None}}
    tl_key = keys.timeline(prefix, trace_key)
    txn_key = keys.transaction(prefix, trace_key)
    ops: list[list[Any]] = [
        ["RPUSH", tl_key, orjson.dumps(entry, default=str).decode()],
        ["EXPIRE", tl_key, TIMELINE_TTL_S],
    ]
    if milestone is not None:
        ops.append(["HSETNX", txn_key, milestone, repr(now)])
        ops.append(["EXPIRE", txn_key, TIMELINE_TTL_S])
        if milestone == "won":
            ops.append(["ZADD", keys.transaction_index_won(prefix), "NX", now, trace_key])
    return ops


def record(
    client: redis.Redis, prefix: str, trace_key: str, event: str, *,
    milestone: str | None = None, at: float | None = None, **details: Any,
) -> None:
    """Append ``event`` to the timeline now."""
    pipe = client.pipeline(transaction=True)
    for op in record_ops(prefix, trace_key, event, milestone=milestone, at=at, **details):
        pipe.execute_command(*op)  # type: ignore[no-untyped-call]
    pipe.execute()


def read(client: redis.Redis, prefix: str, trace_key: str) -> list[dict[str, Any]]:
    raw = cast("list[bytes]", client.lrange(keys.timeline(prefix, trace_key), 0, -1))
    return [json.loads(item) for item in raw]


def milestones(client: redis.Redis, prefix: str, trace_key: str) -> dict[str, float]:
    raw = cast("dict[bytes, bytes]", client.hgetall(keys.transaction(prefix, trace_key)))
    return {k.decode(): float(v) for k, v in raw.items()}


def bump(client: redis.Redis, prefix: str, trace_key: str, counter: str, by: int = 1) -> None:
    """Count something about a transaction (requeues, retries)."""
    txn_key = keys.transaction(prefix, trace_key)
    pipe = client.pipeline(transaction=True)
    pipe.hincrby(txn_key, counter, by)
    pipe.expire(txn_key, TIMELINE_TTL_S)
    pipe.execute()
