"""What a chaos run does and when: its options, and the schedule drawn from its seed.

The run has two phases. In the **chaos phase** most opportunities are won in waves over its
first tenth, as a quarter-end rush would, so that a backlog is in every queue while the
disruptive faults happen at seeded times: pool processes and whole worker nodes killed,
Redis killed and restarted, a receiver worker killed mid-delivery, an ERP maintenance
window. The background faults (ERP 5xx, a 429 rate limit, answers lost after the commit,
Salesforce's duplicate and reordered deliveries) last the whole run, as a flaky world does.
After the **last fault** the remaining opportunities are won at a steady pace: their
latency is the one held to the bound.

**Churn**: a seeded share of the chaos cohort is lost, re-opened, edited and won again at
seeded times (``churn.py`` plays it); some of them are invoiced before they are lost, the
designed business failure.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

#: Fault kinds of the schedule (the background faults are settings, not events).
POOL_KILL, NODE_KILL, REDIS_KILL, RECEIVER_KILL, MAINTENANCE, BROKER_KILL = (
    "pool_kill", "node_kill", "redis_kill", "receiver_kill", "erp_maintenance", "broker_kill")
#: The brokers a run can put the fleet on: the state Redis itself, or a RabbitMQ node.
BROKERS = ("redis", "rabbitmq")


@dataclass(frozen=True)
class ChaosOptions:
    """Every knob of one run; ``smoke`` is the short run the test suite uses."""

    opportunities: int = 300
    accounts: int = 50
    seed: int = 11
    #: Length of the chaos phase, seconds.
    chaos_s: float = 150.0
    #: Share of the chaos phase over which its opportunities are won (the rush).
    rush_share: float = 0.1
    #: Share of the opportunities won after the last fault, and their pace (per second).
    calm_share: float = 0.2
    calm_per_s: float = 2.0
    erp_error_rate: float = 0.10
    erp_lost_answer_rate: float = 0.02
    #: The ERP's own limit: calls per sliding second beyond it are answered 429.
    erp_rate_limit_per_s: float = 50.0
    erp_latency_ms: float = 20.0
    erp_latency_jitter_ms: float = 60.0
    maintenance_s: float = 15.0
    sf_duplicate_rate: float = 0.1
    sf_reorder: bool = True
    #: A pool process is killed every so many seconds (uniform in this range).
    pool_kill_every_s: tuple[float, float] = (3.0, 6.0)
    node_kills: int = 3
    #: How soon the supervisor starts a killed worker node again, seconds.
    node_restart_after_s: float = 1.0
    redis_restart: bool = True
    redis_down_s: float = 2.0
    #: The fleet's broker: ``redis`` (the state Redis) or ``rabbitmq`` (a private RabbitMQ
    #: node, O2C_BROKER_URL=amqp://...; the state stays on the Redis above).
    broker: str = "redis"
    #: On RabbitMQ: SIGKILL the node once and start it again this long after.
    broker_restart: bool = True
    broker_down_s: float = 2.0
    receiver_kill: bool = True
    #: Longest wait for every opportunity to settle after the last fault, seconds.
    settle_s: float = 180.0
    #: Bound on the p95 of won → booked for the opportunities won after the last fault.
    latency_bound_s: float = 60.0
    #: Share of the opportunities lost, re-opened, edited and won again during the run
    #: (taken from the chaos cohort, never one built to fail); 0 turns churn off.
    churn_share: float = 0.1
    #: Share of the churned ones invoiced in the ERP before they are lost (the designed
    #: ``cancellation_after_invoice``, then ``amendment_required``).
    churn_invoiced_share: float = 0.3
    #: When, as shares of the chaos phase, churned opportunities are lost (once booked
    #: and invoiced, for those to be invoiced first).
    churn_lose_within: tuple[float, float] = (0.2, 0.6)
    #: The ERP invoices no order by itself (its delay is past any run): the run's billing
    #: clerk invoices each booked order, but the churned ones to be compensated.
    erp_invoice_delay_s: float = 86_400.0
    #: Longest wait, with faults off, for the requeued dead letters to settle, seconds.
    replay_s: float = 90.0
    run_dir: Path = Path(".o2c/chaos")

    @classmethod
    def smoke(cls, **changes: object) -> ChaosOptions:
        """50 opportunities, a shorter phase, every fault kind at least once."""
        small = cls(opportunities=50, accounts=20, chaos_s=40.0, erp_lost_answer_rate=0.08,
                    erp_rate_limit_per_s=30.0, maintenance_s=6.0, pool_kill_every_s=(3.0, 5.0),
                    node_kills=1, settle_s=60.0, churn_share=0.16, churn_invoiced_share=0.15,
                    replay_s=45.0)
        return replace(small, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, order=True)
class Event:
    """One thing to do ``at_s`` seconds into the chaos phase."""

    at_s: float
    kind: str
    #: The worker process type to hit (pool and node kills).
    target: str = ""
    #: A seeded draw in [0, 1) that picks the victim among the processes found then.
    pick: float = 0.0
    ids: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Schedule:
    events: list[Event]
    chaos_ids: list[str]
    calm_ids: list[str]
    #: The calm cohort in waves of one a second, at the chaos phase's pace.
    calm_waves: list[tuple[str, ...]]
    churn: list[Churn] = field(default_factory=list)

    @property
    def faults(self) -> list[Event]:
        return [e for e in self.events if e.kind != "win"]


@dataclass(frozen=True)
class Churn:
    """One opportunity's second life: lost at ``lose_at_s`` into the chaos phase (once its
    win wave has run; once booked, when ``after_booking``; and invoiced, when
    ``invoiced``), kept lost ``lost_s``
    at least and until the fleet has handled the loss, re-opened, its line ``line`` given
    ``add_qty`` more, and won again."""

    opportunity: str
    invoiced: bool
    after_booking: bool
    lose_at_s: float
    lost_s: float
    edit_after_s: float
    win_after_s: float
    line: int = 1
    add_qty: int = 1


def build_schedule(opts: ChaosOptions, opportunity_ids: list[str], workers: list[str],
                   *, designed: frozenset[str] = frozenset()) -> Schedule:
    """Waves of wins and the disruptive faults, every choice drawn from ``opts.seed``; the
    churn from a generator of its own, so that it leaves the faults' draws as they were."""
    rng = random.Random(opts.seed)
    ids = list(opportunity_ids)
    rng.shuffle(ids)
    calm = max(1, round(len(ids) * opts.calm_share))
    chaos_ids, calm_ids = ids[:-calm], ids[-calm:]
    # The receiver is killed while Salesforce delivers a burst: one message of many.
    burst = max(10, len(chaos_ids) // 12) if opts.receiver_kill else 0
    rush = max(1, int(opts.chaos_s * opts.rush_share))
    wins = [Event(float(n), "win", ids=wave)
            for n, wave in enumerate(_waves(chaos_ids[burst:], rush))]
    events = [*wins, *_kills(opts, rng, workers), *_singles(opts, rng, tuple(chaos_ids[:burst]))]
    churn = _churn(opts, [i for i in chaos_ids[burst:] if i not in designed], len(ids))
    return Schedule(sorted(events), chaos_ids, calm_ids,
                    _waves(calm_ids, max(1, math.ceil(len(calm_ids) / opts.calm_per_s))),
                    churn)


def _churn(opts: ChaosOptions, candidates: list[str], total: int) -> list[Churn]:
    """``churn_share`` of all the opportunities, from ``candidates`` (in the order they are
    won); at least one invoiced and one not when there are two or more. The invoiced ones
    are lost once booked, so they come from the first quarter won."""
    count = min(len(candidates), round(total * opts.churn_share))
    if count < 1:
        return []
    rng = random.Random(f"{opts.seed}:churn")
    invoiced = min(count - 1, max(1, round(count * opts.churn_invoiced_share))) \
        if count > 1 else 0
    first = rng.sample(candidates[:max(invoiced, len(candidates) // 4)], invoiced)
    chosen = first + rng.sample([c for c in candidates if c not in first], count - invoiced)
    low, high = opts.churn_lose_within
    # Those not invoiced: every other one is lost whatever its state (before it is booked,
    # while it is, or after), the rest once Salesforce shows it booked.
    return [Churn(opp, n < invoiced, n < invoiced or n % 2 == 0,
                  round(rng.uniform(low, high) * opts.chaos_s, 2),
                  lost_s=round(rng.uniform(1.5, 4.0), 2),
                  edit_after_s=round(rng.uniform(0.5, 1.5), 2),
                  win_after_s=round(rng.uniform(0.5, 1.5), 2), add_qty=rng.randint(1, 3))
            for n, opp in enumerate(chosen)]


def _waves(ids: list[str], count: int) -> list[tuple[str, ...]]:
    """``ids`` cut into ``count`` waves (one a second) as even as can be."""
    cuts = [len(ids) * n // count for n in range(count + 1)]
    return [tuple(ids[cuts[n]:cuts[n + 1]]) for n in range(count) if cuts[n + 1] > cuts[n]]


def _kills(opts: ChaosOptions, rng: random.Random, workers: list[str]) -> list[Event]:
    low, high = opts.pool_kill_every_s
    events, at = [], rng.uniform(low, high)
    while at < opts.chaos_s - 2:
        events.append(Event(round(at, 2), POOL_KILL, rng.choice(workers), rng.random()))
        at += rng.uniform(low, high)
    for _ in range(opts.node_kills):
        at = rng.uniform(0.1, 0.6) * opts.chaos_s
        events.append(Event(round(at, 2), NODE_KILL, rng.choice(workers)))
    return events


def _singles(opts: ChaosOptions, rng: random.Random, burst: tuple[str, ...]) -> list[Event]:
    """The receiver kill in the rush (with the burst it wins), then Redis, then the
    maintenance window, while the backlog is still being worked off."""
    out = []
    if opts.receiver_kill:
        out.append(Event(round(rng.uniform(0.03, 0.08) * opts.chaos_s, 2), RECEIVER_KILL,
                         "web", rng.random(), ids=burst))
    if opts.redis_restart:
        out.append(Event(round(rng.uniform(0.2, 0.35) * opts.chaos_s, 2), REDIS_KILL))
    if opts.broker == "rabbitmq" and opts.broker_restart:
        # A generator of its own, so that a Redis run's draws stay as they were.
        draw = random.Random(f"{opts.seed}:broker")
        out.append(Event(round(draw.uniform(0.38, 0.5) * opts.chaos_s, 2), BROKER_KILL,
                         "rabbitmq"))
    if opts.maintenance_s > 0:
        latest = max(opts.chaos_s - opts.maintenance_s - 2, 0.5 * opts.chaos_s)
        out.append(Event(round(rng.uniform(0.35 * opts.chaos_s, min(latest, 0.5 * opts.chaos_s)),
                               2), MAINTENANCE))
    return out
