"""The delivery benchmark's rounds, their summary per side, and its tables."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from tests.bench import commandstats

#: Commands shown one by one in the breakdown; the rest are summed.
TOP_COMMANDS = 8


@dataclass
class Round:
    side: str
    #: Units of work (tasks or chains) timed, after the warm-up.
    units: int
    seconds: float
    #: Redis commands from before the workers start to after the queue is drained,
    #: without the benchmark's own.
    commands: Counter[str]
    #: CPU per message while timed: Redis, the workers' main processes, their pools.
    redis_us: float
    main_us: float
    pool_us: float
    #: Runs counted beyond the units loaded (a message delivered twice), and messages
    #: still queued, held or unacked once drained.
    extra_runs: int
    left: int

    @property
    def rate(self) -> float:
        return self.units / self.seconds if self.seconds else 0.0


@dataclass
class SideSummary:
    name: str
    best: float
    median: float
    #: Calls per message over every round of the side, largest first.
    commands: dict[str, float]
    redis_us: float
    main_us: float
    pool_us: float
    extra_runs: int
    left: int

    @property
    def commands_total(self) -> float:
        return sum(self.commands.values())


@dataclass
class Summary:
    workload: str
    unit: str
    steps: int
    units_loaded: int
    rounds: int
    reliable: SideSummary
    stock: SideSummary
    paired: list[float]

    @property
    def ratio_best(self) -> float:
        return self.reliable.best / self.stock.best if self.stock.best else float("nan")


def side_summary(rounds: list[Round], steps: int, units_loaded: int) -> SideSummary:
    total: Counter[str] = Counter()
    for r in rounds:
        total.update(r.commands)
    rates = [r.rate for r in rounds]
    return SideSummary(
        name=rounds[0].side, best=max(rates), median=statistics.median(rates),
        commands=commandstats.per_unit(total, units_loaded * steps * len(rounds)),
        redis_us=statistics.median(r.redis_us for r in rounds),
        main_us=statistics.median(r.main_us for r in rounds),
        pool_us=statistics.median(r.pool_us for r in rounds),
        extra_runs=sum(r.extra_runs for r in rounds), left=sum(r.left for r in rounds))


def summarize(workload: str, unit: str, steps: int, units_loaded: int,
              reliable: list[Round], stock: list[Round]) -> Summary:
    paired = [r.rate / s.rate for r, s in zip(reliable, stock, strict=True) if s.rate]
    return Summary(workload, unit, steps, units_loaded, len(reliable),
                   side_summary(reliable, steps, units_loaded),
                   side_summary(stock, steps, units_loaded), paired)


def _side_row(s: Summary, side: SideSummary) -> str:
    return (f"| {s.workload} | {side.name} | {side.best:,.0f} | {side.median:,.0f} "
            f"| {side.best * s.steps:,.0f} | {side.commands_total:.1f} | {side.redis_us:,.0f} "
            f"| {side.main_us:,.0f} / {side.pool_us:,.0f} | {side.extra_runs} / {side.left} |")


def _breakdown(side: SideSummary) -> str:
    shown = list(side.commands.items())[:TOP_COMMANDS]
    rest = sum(list(side.commands.values())[TOP_COMMANDS:])
    parts = [f"{name.upper()} {n:.2f}" for name, n in shown]
    return ", ".join(parts + ([f"other {rest:.2f}"] if rest else []))


def print_tables(rows: list[Summary], *, rounds: int, concurrency: int) -> None:
    print(f"\nDelivery: real prefork workers (-c {concurrency}, one per queue), a private "
          f"Redis, {rounds} alternating round(s) per side; each round pre-loads the queue, "
          "starts the workers and is timed after its first 10%")
    print("| workload | side | best /s | median /s | messages/s (best) "
          "| Redis commands/message | Redis CPU µs/message "
          "| worker CPU µs/message (main / pool) | extra runs / left over |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in rows:
        print(_side_row(s, s.reliable))
        print(_side_row(s, s.stock))
    print("\n| workload | units per round | ratio reliable/stock (best) "
          "| ratio (median of paired rounds, lowest) |")
    print("|---|---|---|---|")
    for s in rows:
        print(f"| {s.workload} | {s.units_loaded:,} {s.unit}s | {s.ratio_best:.2f} "
              f"| {statistics.median(s.paired):.2f}, {min(s.paired):.2f} |")
    print("\nRedis commands per message (INFO commandstats, commands inside Lua included)")
    print("| workload | side | calls per message |")
    print("|---|---|---|")
    for s in rows:
        for side in (s.reliable, s.stock):
            print(f"| {s.workload} | {side.name} | {_breakdown(side)} |")
