"""Every step of a transaction appends to its trace key's timeline in Redis.

Each record also keeps the index of transactions in flight (``{p}:txn:idx:active``), in the
same writes: an opening event puts the trace key in, scored by the time of its newest event
(its last progress); every later event moves the score on; the milestone that closes its
kind (or a purge of its last open dead letter) takes it out. A transaction still in the
index long after its last event, with no open dead letter, is stalled (``stalls``).
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import orjson
import redis

from o2c_workers import keys

#: How long a transaction's timeline and milestones are kept, from its last event; also how
#: long a trace key stays in the index of transactions won.
TIMELINE_TTL_S = 30 * 24 * 3600
#: The newest events a timeline keeps: a trace key that lives for years (an account synced
#: at every change) refreshes its TTL with each event, so the TTL alone does not bound it.
TIMELINE_MAX_EVENTS = 1000

#: The milestones of an opportunity, in the order it reaches them.
MILESTONES = ("won", "booked", "written_back", "invoiced", "paid")
#: The milestone of an account synced to its ERP customer.
SYNCED = "synced"
#: Events that open a transaction: the receiver took it in, a sweep found it (``swept``)
#: or started a stalled one again (``redriven``).
OPENING_EVENTS = frozenset({"received", "swept", "redriven"})
#: Milestones that open one too: a chain started without the receiver (a requeued
#: ``invalid_payload``, a sweep) stamps "won" in its first step.
OPENING_MILESTONES = frozenset({"won"})
#: Outcomes of an opportunity that has no live order at the end: its chain found it no
#: longer won (``skipped``), or it left Closed Won and its order was cancelled. Unlike a
#: milestone, an outcome is stamped each time (the latest time), and booking an order again
#: clears it: it says how the transaction stands now.
SKIPPED = "skipped"
CANCELLED = "cancelled"
OUTCOMES = (SKIPPED, CANCELLED)
#: What ends each kind of transaction: past it nothing of ours is pending (an
#: opportunity's invoice and payment come on the ERP's schedule, not ours).
CLOSING_MILESTONES = frozenset({"written_back", SYNCED, *OUTCOMES})


def record_ops(
    prefix: str, trace_key: str, event: str, *, milestone: str | None = None,
    outcome: str | None = None, at: float | None = None, closes: bool = False,
    **details: Any,
) -> list[list[Any]]:
    """The writes that append ``event``; a milestone also stamps the transaction hash once,
    an outcome (``OUTCOMES``) every time.

    ``closes`` ends the transaction's time in flight without a closing milestone (people
    closed it: its last open dead letter was purged; nothing was left to do).
    """
    now = time.time() if at is None else at
    entry = {"ts": now, "event": event, **{k: v for k, v in details.items() if v is not None}}
    tl_key = keys.timeline(prefix, trace_key)
    txn_key = keys.transaction(prefix, trace_key)
    ops: list[list[Any]] = [
        ["RPUSH", tl_key, orjson.dumps(entry, default=str).decode()],
        ["LTRIM", tl_key, -TIMELINE_MAX_EVENTS, -1],
        ["EXPIRE", tl_key, TIMELINE_TTL_S],
    ]
    if milestone is not None:
        ops.append(["HSETNX", txn_key, milestone, repr(now)])
        ops.append(["EXPIRE", txn_key, TIMELINE_TTL_S])
        if milestone == "won":
            won = keys.transaction_index_won(prefix)
            # Opportunities won before the timeline TTL have no milestones left to report.
            ops.append(["ZREMRANGEBYSCORE", won, "-inf", f"({time.time() - TIMELINE_TTL_S!r}"])
            ops.append(["ZADD", won, "NX", now, trace_key])
        if milestone == "booked":
            ops.append(["HDEL", txn_key, *OUTCOMES])
    if outcome is not None:
        ops.append(["HSET", txn_key, outcome, repr(now)])
        ops.append(["EXPIRE", txn_key, TIMELINE_TTL_S])
    ops.extend(_progress_ops(prefix, trace_key, event, outcome or milestone, now,
                             closes=closes))
    return ops


def _progress_ops(prefix: str, trace_key: str, event: str, milestone: str | None, now: float,
                  *, closes: bool) -> list[list[Any]]:
    """Keep the index of transactions in flight: in, moved on (never back), or out."""
    active = keys.transaction_index_active(prefix)
    if closes or milestone in CLOSING_MILESTONES:
        return [["ZREM", active, trace_key]]
    if event in OPENING_EVENTS or milestone in OPENING_MILESTONES:
        # Members whose timeline has expired meanwhile are dropped as new ones come in.
        return [["ZREMRANGEBYSCORE", active, "-inf", f"({time.time() - TIMELINE_TTL_S!r}"],
                ["ZADD", active, "GT", now, trace_key]]
    return [["ZADD", active, "XX", "GT", now, trace_key]]


def record(
    client: redis.Redis, prefix: str, trace_key: str, event: str, *,
    milestone: str | None = None, outcome: str | None = None, at: float | None = None,
    closes: bool = False, **details: Any,
) -> None:
    """Append ``event`` to the timeline now."""
    pipe = client.pipeline(transaction=True)
    for op in record_ops(prefix, trace_key, event, milestone=milestone, outcome=outcome, at=at,
                         closes=closes, **details):
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
