"""The end-to-end benchmark's rounds: a side up and warm, one measured run, its checks."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.bench import commandstats
from tests.bench.e2e_hops import hops
from tests.bench.e2e_probe import Observer, erp_breakdown
from tests.bench.e2e_report import Round
from tests.bench.e2e_sides import Running, Side, tree_cpu_s
from tests.bench.e2e_watch import Booking, Calls, feed, settle
from tests.bench.procstat import redis_cpu_seconds

#: Looks at the booked state, seconds: coarse for a burst (many orders in flight are read
#: with one query, which the sandbox answers by copying every opportunity, holding its
#: store), fine for the paced feed (a few, each read by id).
POLL_BURST_S, POLL_PACED_S = 0.5, 0.01


@dataclass(frozen=True)
class Plan:
    burst: int
    paced: int
    warm: int
    rounds: int
    life: int
    accounts: int

    @property
    def opportunities(self) -> int:
        per_side = self.rounds * (2 * self.warm + self.burst + self.paced)
        return 2 * per_side + self.life + 2 * self.warm + 2


FULL = Plan(burst=300, paced=150, warm=20, rounds=2, life=100, accounts=100)
QUICK = Plan(burst=24, paced=12, warm=4, rounds=1, life=10, accounts=20)


class Pool:
    """Fresh opportunities, each used once."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = list(ids)

    def take(self, n: int) -> list[str]:
        if len(self.ids) < n:
            raise RuntimeError("the sandbox has no fresh opportunities left")
        taken, self.ids = self.ids[:n], self.ids[n:]
        return taken


@dataclass
class Bench:
    """What every round works with."""

    obs: Observer
    redis: redis.Redis
    env: dict[str, str]
    pool: Pool
    plan: Plan
    log_root: Path
    #: The simulators' process: its CPU per order is the sandbox's share of a side's cost.
    sandbox_pid: int
    #: The RabbitMQ node's VM, when a side runs on it: its CPU is that side's broker cost.
    rabbitmq_pid: int | None = None


@dataclass
class Meter:
    """Everything read at the start of the measured part of a round."""

    calls: Calls
    erp_seq: int
    erp_created: int
    erp_duplicates: int
    cpu_s: float
    redis_cpu_s: float
    sandbox_cpu_s: float
    rabbitmq_cpu_s: float

    @classmethod
    def read(cls, b: Bench, running: Running, calls: Calls) -> Meter:
        stats = b.obs.erp_stats()
        return cls(calls, int(stats["calls"]["total"]),
                   int(stats["documents_created"].get("Sales Order", 0)),
                   int(stats["duplicates_refused"]["total"]), running.cpu_s(),
                   redis_cpu_seconds(b.redis), tree_cpu_s(b.sandbox_pid),
                   tree_cpu_s(b.rabbitmq_pid) if b.rabbitmq_pid else 0.0)


#: The benchmark's own Redis commands between the reset and the count.
OWN_REDIS = Counter({"config|resetstat": 1, "info": 2})


def measure(b: Bench, side: Side, running: Running, kind: str, ids: list[str],
            go: Callable[[], Booking]) -> Round:
    """Meter, run ``go()`` (a ``Booking``), wait for quiet, meter again, check."""
    start = Meter.read(b, running, settle(b.obs))
    b.redis.config_resetstat()
    booking: Booking = go()
    end_calls = settle(b.obs)
    end = Meter.read(b, running, end_calls)
    commands = commandstats.calls(b.redis) - OWN_REDIS
    memory = running.memory()
    stats = b.obs.erp_stats()
    check_booked(b.obs, ids, created=int(stats["documents_created"].get("Sales Order", 0))
                 - start.erp_created)
    return Round(
        side=side.label, kind=kind, orders=len(ids), booking=booking,
        sf=end.calls.sf - start.calls.sf,
        erp=erp_breakdown(b.obs.erp_calls_after(start.erp_seq)[:end.erp_seq - start.erp_seq]),
        erp_duplicates=int(stats["duplicates_refused"]["total"]) - start.erp_duplicates,
        cpu_s=end.cpu_s - start.cpu_s, redis_cpu_s=end.redis_cpu_s - start.redis_cpu_s,
        sandbox_cpu_s=end.sandbox_cpu_s - start.sandbox_cpu_s,
        rabbitmq_cpu_s=end.rabbitmq_cpu_s - start.rabbitmq_cpu_s,
        redis=commands, memory=memory)


def check_booked(obs: Observer, ids: list[str], *, created: int) -> None:
    """Each opportunity has one ERP order, submitted, and Salesforce carries its number;
    the ERP created no order beyond these."""
    orders, records = obs.orders_of(ids), obs.opportunities(ids)
    problems = []
    for opp_id in ids:
        docs = orders.get(opp_id, [])
        if len(docs) != 1 or docs[0]["docstatus"] != 1:
            problems.append(f"{opp_id}: {len(docs)} ERP orders "
                            f"{[(d['name'], d['docstatus']) for d in docs]}")
        elif records[opp_id].get("ERP_Order_Number__c") != docs[0]["name"]:
            problems.append(f"{opp_id}: Salesforce carries "
                            f"{records[opp_id].get('ERP_Order_Number__c')!r}, the ERP has "
                            f"{docs[0]['name']}")
    if created != len(ids):
        problems.append(f"the ERP created {created} Sales Orders for {len(ids)} opportunities")
    if problems:
        raise RuntimeError("booked wrong:\n" + "\n".join(problems[:20]))


@contextmanager
def side_up(b: Bench, side: Side, tag: str) -> Iterator[Running]:
    """The side's processes on a flushed database, the org's messages pointed at it, warm."""
    b.redis.flushdb()
    running = side.start(b.env, b.log_root / tag)
    try:
        b.obs.set_outbound(running.outbound_url)
        feed(b.obs, b.pool.take(b.plan.warm), rate_per_s=None, poll_s=POLL_BURST_S,
             timeout_s=120)
        yield running
    finally:
        b.obs.set_outbound(None)
        running.stop()


def run_round(b: Bench, side: Side, kind: str, n: int, *, rate_per_s: float | None,
              tag: str) -> Round:
    with side_up(b, side, tag) as running:
        ids = b.pool.take(n)
        poll = POLL_BURST_S if rate_per_s is None else POLL_PACED_S
        timeout = 120 + (n / rate_per_s if rate_per_s else n / 2)

        def go() -> Booking:
            return feed(b.obs, ids, rate_per_s=rate_per_s, poll_s=poll, timeout_s=timeout)

        result = measure(b, side, running, kind, ids, go)
    result.rate_per_s = rate_per_s
    result.steps = step_times(b.log_root / tag)
    if rate_per_s is not None:
        result.hops = hops(b.log_root / tag, ids)
    return result


#: Celery's line for a task that ran (``-l INFO``), in both sides' worker logs.
_SUCCEEDED = re.compile(r"Task (?P<name>[\w.]+)\[[^\]]+\] succeeded in (?P<s>[0-9.]+)s")


def step_times(log_dir: Path) -> dict[str, list[float]]:
    """Each task's run times in the round (warm-up included), in seconds, from the
    workers' own log lines."""
    out: dict[str, list[float]] = {}
    for log in sorted(log_dir.glob("*.log")):
        for match in _SUCCEEDED.finditer(log.read_text(errors="replace")):
            out.setdefault(match["name"], []).append(float(match["s"]))
    return out


def alternate(b: Bench, order: list[Side]) -> list[Round]:
    """Saturation rounds of the two sides, taking turns (the first side first, then the
    second first, ...), then paced rounds at half each side's own saturation rate."""
    rounds: list[Round] = []
    order = list(order)
    for index in range(b.plan.rounds):
        # The first side (ours) first: the plain chain runs as many processes as ours
        # (counted from /proc).
        for side in order if index % 2 == 0 else order[::-1]:
            rounds.append(run_round(b, side, "saturation", b.plan.burst, rate_per_s=None,
                                    tag=f"burst-{index}-{side.label}"))
            order[1].sizes = dict(order[0].sizes)
            print(rounds[-1].line(), flush=True)
    for index in range(b.plan.rounds):
        for side in order if index % 2 == 0 else order[::-1]:
            rate = statistics.median(r.booking.rate() for r in rounds
                                     if r.side == side.label and r.kind == "saturation") / 2
            rounds.append(run_round(b, side, "paced", b.plan.paced, rate_per_s=rate,
                                    tag=f"paced-{index}-{side.label}"))
            print(rounds[-1].line(), flush=True)
    return rounds


