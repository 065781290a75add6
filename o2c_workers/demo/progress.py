"""Read how far every transaction has come, from the fleet's own records in Redis."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

import redis

from o2c_workers import keys
from o2c_workers.celery_app import DOMAINS
from o2c_workers.dlq import DeadLetterStore, Status

#: Milestones in the order a transaction reaches them.
STAGES = ("won", "booked", "written_back", "invoiced", "paid")


@dataclass
class Snapshot:
    counts: dict[str, int]
    won_to_booked_s: list[float]
    booked_to_invoiced_s: list[float]
    dead_letters: Counter[str]
    dead_letter_traces: set[str]
    queued: int
    requeues: int = 0
    trace_keys: list[str] = field(default_factory=list)

    def percentile(self, values: list[float], pct: float) -> float | None:
        if not values:
            return None
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def snapshot(client: redis.Redis, prefix: str) -> Snapshot:
    """Counts per milestone, latencies, open dead letters and queue depth, right now."""
    won = cast("list[bytes]", client.zrange(keys.transaction_index_won(prefix), 0, -1))
    traces = [raw.decode() for raw in won]
    pipe = client.pipeline(transaction=False)
    for trace in traces:
        pipe.hgetall(keys.transaction(prefix, trace))
    counts = dict.fromkeys(STAGES, 0)
    won_to_booked, booked_to_invoiced = [], []
    requeues = 0
    for raw in pipe.execute():
        stamps = {k.decode(): float(v) for k, v in raw.items()}
        for stage in STAGES:
            counts[stage] += stage in stamps
        if "won" in stamps and "booked" in stamps:
            won_to_booked.append(stamps["booked"] - stamps["won"])
        if "booked" in stamps and "invoiced" in stamps:
            booked_to_invoiced.append(stamps["invoiced"] - stamps["booked"])
        requeues += int(stamps.get("requeues", 0))
    store = DeadLetterStore(client, prefix=prefix)
    entries = store.many(store.ids(status=Status.OPEN))
    queued = sum(cast(int, client.llen(domain)) for domain in DOMAINS)
    return Snapshot(counts, won_to_booked, booked_to_invoiced,
                    Counter(entry.category for entry in entries),
                    {entry.trace_key for entry in entries}, queued, requeues, traces)
