"""The O2C KPIs, read from the fleet's own records in Redis.

Transactions are the opportunities won in the period (``{p}:txn:idx:won``), each with its
milestones and counters (``{p}:txn:{trace_key}``) and its dead letters (by trace key):

- **fallout**: won opportunities that needed a person: at least one dead letter, whatever
  became of it. The rate is over the opportunities won.
- **touchless**: won opportunities booked with no manual requeue. The rate is over the
  opportunities won.
- **retries per order**: Celery retries of any step of the transaction (the base task
  counts them in ``retries``), averaged over the opportunities won.
- **dead letters by category**: every entry filed in the period (any trace key, any status
  now), and those still open.
- **skipped** and **cancelled**: won opportunities that stand without an order now: found no
  longer won before booking, or lost (re-opened) after it with their order cancelled.
- **sweeps**: each catch-up sweep's last successful run (when, its watermark, records seen
  and started, API calls), whatever the period.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from o2c_workers import keys
from o2c_workers.dlq import Status
from o2c_workers.dlq.store import sync
from o2c_workers.sweeps.state import read_status
from o2c_workers.timeline import MILESTONES, OUTCOMES


@dataclass(frozen=True)
class Latency:
    """Seconds between two milestones over the transactions that reached both."""

    count: int
    p50_s: float | None
    p95_s: float | None

    @classmethod
    def of(cls, values: list[float]) -> Latency:
        return cls(len(values), percentile(values, 50), percentile(values, 95))


@dataclass
class Report:
    since: float | None
    generated_at: float
    counts: dict[str, int]
    fallout: int
    touchless: int
    won_to_booked: Latency
    booked_to_invoiced: Latency
    retries: int
    max_retries: int
    requeues: int
    dead_letters_by_category: dict[str, int] = field(default_factory=dict)
    open_dead_letters_by_category: dict[str, int] = field(default_factory=dict)
    #: Claimed by a requeue to RabbitMQ and not marked requeued (``o2c dlq requeue
    #: --reclaim`` for those a dead requeue left).
    requeuing_dead_letters_by_category: dict[str, int] = field(default_factory=dict)
    #: Each sweep's last successful run (``SweepStatus.as_dict``), by sweep name.
    sweeps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def won(self) -> int:
        return self.counts["won"]

    def _rate(self, part: int) -> float | None:
        return part / self.won if self.won else None

    @property
    def fallout_rate(self) -> float | None:
        return self._rate(self.fallout)

    @property
    def touchless_rate(self) -> float | None:
        return self._rate(self.touchless)

    @property
    def retries_per_order(self) -> float | None:
        return self._rate(self.retries)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(fallout_rate=self.fallout_rate, touchless_rate=self.touchless_rate,
                    retries_per_order=self.retries_per_order)
        return data


def percentile(values: list[float], pct: float) -> float | None:
    """The inclusive ``pct``th percentile; None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def _stamps(raw: dict[bytes, bytes]) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in raw.items()}


def build_report(client: redis.Redis, prefix: str, *, since: float | None = None,
                 now: float | None = None) -> Report:
    """The KPIs of the opportunities won since ``since`` (epoch s; None: all kept)."""
    now = time.time() if now is None else now
    low: float | str = "-inf" if since is None else since
    traces = [m.decode() for m in sync(client.zrangebyscore(
        keys.transaction_index_won(prefix), low, "+inf"))]
    pipe = client.pipeline(transaction=False)
    for trace in traces:
        pipe.hgetall(keys.transaction(prefix, trace))
        pipe.zcard(keys.dlq_index_trace(prefix, trace))
    replies = pipe.execute() if traces else []
    counts = dict.fromkeys((*MILESTONES, *OUTCOMES), 0)
    won_to_booked: list[float] = []
    booked_to_invoiced: list[float] = []
    fallout = touchless = retries = max_retries = requeues = 0
    for raw, letters in zip(replies[::2], replies[1::2], strict=True):
        stamps = _stamps(raw)
        for name in counts:
            counts[name] += name in stamps
        if "won" in stamps and "booked" in stamps:
            won_to_booked.append(stamps["booked"] - stamps["won"])
        if "booked" in stamps and "invoiced" in stamps:
            booked_to_invoiced.append(stamps["invoiced"] - stamps["booked"])
        txn_requeues = int(stamps.get("requeues", 0))
        txn_retries = int(stamps.get("retries", 0))
        fallout += int(letters) > 0
        touchless += "booked" in stamps and txn_requeues == 0
        retries += txn_retries
        max_retries = max(max_retries, txn_retries)
        requeues += txn_requeues
    filed, still_open, requeuing = dead_letters_by_category(client, prefix, since=since)
    return Report(
        since=since, generated_at=now, counts=counts, fallout=fallout, touchless=touchless,
        won_to_booked=Latency.of(won_to_booked),
        booked_to_invoiced=Latency.of(booked_to_invoiced),
        retries=retries, max_retries=max_retries, requeues=requeues,
        dead_letters_by_category=filed, open_dead_letters_by_category=still_open,
        requeuing_dead_letters_by_category=requeuing,
        sweeps={name: status.as_dict() for name, status in read_status(client, prefix).items()})


def dead_letters_by_category(client: redis.Redis, prefix: str, *, since: float | None
                             ) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Entries filed (last failed) since ``since`` by category: all, those open now, and
    those requeuing now."""
    categories = sorted(m.decode() for m in sync(client.smembers(
        keys.dlq_facets(prefix, "category"))))
    low: float | str = "-inf" if since is None else since
    pipe = client.pipeline(transaction=False)
    for category in categories:
        for status in Status:
            pipe.zcount(keys.dlq_index_category(prefix, status.value, category), low, "+inf")
    replies = iter(pipe.execute() if categories else [])
    filed: Counter[str] = Counter()
    now: dict[Status, Counter[str]] = {Status.OPEN: Counter(), Status.REQUEUING: Counter()}
    for category in categories:
        for status in Status:
            n = int(next(replies))
            filed[category] += n
            if status in now:
                now[status][category] += n
    return _kept(filed), _kept(now[Status.OPEN]), _kept(now[Status.REQUEUING])


def _kept(counts: Counter[str]) -> dict[str, int]:
    return {c: n for c, n in sorted(counts.items()) if n}
