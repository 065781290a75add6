"""Transactions that stopped moving: in flight, no progress for a while, nobody on it.

A transaction is **stalled** when it is in the index of transactions in flight
(``{p}:txn:idx:active``, kept by ``timeline``), its newest timeline event is older than
``O2C_STALL_AFTER_S``, it has not reached the milestone that closes its kind (written back,
synced) and it has no dead letter still in the queue: open (waiting for people) or
``requeuing`` (claimed by a requeue to RabbitMQ: in progress, or left by one that died after
its claim, for ``o2c dlq requeue --reclaim``). Either way it waits on that entry: it is not
stalled, and no sweep or repair starts it again behind the entry's back; the requeuing ones
are counted apart for operators (``o2c_dead_letters_requeuing``, ``o2c report --stalled``,
``o2c dlq stats``).

The listing reads only that index and, for the transactions past the threshold, one
pipeline of a few reads each: its cost grows with the transactions in flight or waiting
for people, never with the rest of Redis. The receiver's ``/metrics`` counts them on each
scrape (``o2c_stalled_transactions``); ``o2c report --stalled`` lists them; a sweep that
re-drives them can start from ``stalled_transactions``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis

from o2c_workers import keys
from o2c_workers.dlq import Status
from o2c_workers.timeline import CLOSING_MILESTONES

#: Transactions read per pipeline.
BATCH = 500
#: The statuses of a dead letter still in the queue (``Status.closed`` is false for them).
WAITING = (Status.OPEN, Status.REQUEUING)
_CLOSING = sorted(CLOSING_MILESTONES)


@dataclass(frozen=True)
class Stall:
    """One stalled transaction: when it last moved, and what that was."""

    trace_key: str
    #: Epoch seconds of its newest timeline event.
    last_progress_at: float
    #: That event, as the timeline holds it (``ts``, ``event``, ``task``, ...).
    last_event: dict[str, Any]
    stalled_for_s: float

    def as_dict(self) -> dict[str, Any]:
        return {"trace_key": self.trace_key, "last_progress_at": self.last_progress_at,
                "stalled_for_s": self.stalled_for_s, "last_event": self.last_event}


def is_stalled(last_progress_at: float | None, *, closed: bool, open_dead_letters: int,
               stall_after_s: float, now: float) -> bool:
    """The rule, for the listing and for one transaction's status alike."""
    return (last_progress_at is not None and not closed and open_dead_letters == 0
            and last_progress_at < now - stall_after_s)


def stalled_transactions(client: redis.Redis, prefix: str, *, stall_after_s: float,
                         now: float | None = None, limit: int | None = None) -> list[Stall]:
    """Stalled transactions, longest stalled first (at most ``limit``)."""
    now = time.time() if now is None else now
    candidates = cast("list[tuple[bytes, float]]", client.zrangebyscore(
        keys.transaction_index_active(prefix), "-inf", f"({now - stall_after_s!r}",
        withscores=True))
    found: list[Stall] = []
    for start in range(0, len(candidates), BATCH):
        batch = [(member.decode(), score) for member, score in candidates[start:start + BATCH]]
        found.extend(_check(client, prefix, batch, stall_after_s=stall_after_s, now=now))
        if limit is not None and len(found) >= limit:
            return found[:limit]
    return found


def count_stalled(client: redis.Redis, prefix: str, *, stall_after_s: float) -> int:
    return len(stalled_transactions(client, prefix, stall_after_s=stall_after_s))


def open_dead_letters(client: redis.Redis, prefix: str, trace_keys: Iterable[str]
                      ) -> dict[str, int]:
    """Dead letters still in the queue (open or requeuing) per trace key, from the
    per-trace and per-status indexes."""
    trace_keys = list(trace_keys)
    pipe = client.pipeline(transaction=False)
    for trace_key in trace_keys:
        pipe.zrange(keys.dlq_index_trace(prefix, trace_key), 0, -1)
    ids = dict(zip(trace_keys, pipe.execute(), strict=True))
    indexes = [keys.dlq_index_status(prefix, status.value) for status in WAITING]
    pipe = client.pipeline(transaction=False)
    for entry_ids in ids.values():
        for entry_id in entry_ids:
            for index in indexes:
                pipe.zscore(index, entry_id)
    scores = iter(pipe.execute())
    return {trace_key: sum(any([next(scores) is not None for _ in indexes])
                           for _ in entry_ids)
            for trace_key, entry_ids in ids.items()}


def requeuing_dead_letters(client: redis.Redis, prefix: str) -> int:
    """Dead letters of the whole fleet left ``requeuing`` (or being requeued right now)."""
    return int(cast("int", client.zcard(keys.dlq_index_status(prefix,
                                                              Status.REQUEUING.value))))


def _check(client: redis.Redis, prefix: str, batch: list[tuple[str, float]], *,
           stall_after_s: float, now: float) -> list[Stall]:
    pipe = client.pipeline(transaction=False)
    for trace_key, _ in batch:
        pipe.lindex(keys.timeline(prefix, trace_key), -1)
        pipe.hmget(keys.transaction(prefix, trace_key), _CLOSING)
    replies = pipe.execute()
    letters = open_dead_letters(client, prefix, (trace_key for trace_key, _ in batch))
    found = []
    for (trace_key, score), last, stamps in zip(batch, replies[::2], replies[1::2],
                                                strict=True):
        # No timeline left: it expired with the transaction; the index forgets it later.
        if last is None:
            continue
        if is_stalled(score, closed=any(stamps), open_dead_letters=letters[trace_key],
                      stall_after_s=stall_after_s, now=now):
            found.append(Stall(trace_key, score, orjson.loads(last), now - score))
    return found
