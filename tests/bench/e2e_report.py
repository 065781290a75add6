"""The end-to-end benchmark's rounds, summed per side, and its tables (issue 16's targets
beside the measured figures)."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.bench.e2e_sides import Memory
from tests.bench.e2e_watch import Booking

if TYPE_CHECKING:
    from tests.bench.e2e_life import Life

SIDES = ("ours", "plain")
TOP = 8


@dataclass
class Round:
    side: str
    #: ``saturation``, ``paced``, ``lone`` or ``life`` (a burst booked for its whole life).
    kind: str
    orders: int
    booking: Booking
    #: Over the measured opportunities: Salesforce calls by (method, resource), ERP calls
    #: by "method DocType", duplicates the ERP refused.
    sf: Counter[tuple[str, str]]
    erp: Counter[str]
    erp_duplicates: int
    cpu_s: float
    redis_cpu_s: float
    sandbox_cpu_s: float
    redis: Counter[str]
    memory: dict[str, Memory]
    #: CPU of the RabbitMQ node over the round (0 when no side runs on it).
    rabbitmq_cpu_s: float = 0.0
    rate_per_s: float | None = field(default=None)
    #: Task name → its run times in the round, seconds (the workers' log lines).
    steps: dict[str, list[float]] = field(default_factory=dict)
    #: Paced rounds of ours: segment of an order's way → ms per opportunity (``e2e_hops``).
    hops: dict[str, list[float]] = field(default_factory=dict)

    def per_order(self, counts: Counter[Any]) -> float:
        return sum(counts.values()) / self.orders

    def line(self) -> str:
        p50, p95, p99 = percentiles(self.booking.latencies_ms())
        return (f"| {self.side} | {self.kind} | {self.orders} | {self.booking.rate():.1f} "
                f"| {p50:,.0f} / {p95:,.0f} / {p99:,.0f} | {self.per_order(self.sf):.2f} "
                f"| {self.per_order(self.erp):.2f} | {self.cpu_s * 1000 / self.orders:.1f} "
                f"| {self.per_order(self.redis):.1f} | {self.erp_duplicates} |")


def percentiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return (values[0],) * 3 if values else (float("nan"),) * 3
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[94], q[98]


@dataclass
class SideSummary:
    rounds: list[Round]
    paced: list[Round]

    def _sum(self, attr: str) -> Counter[Any]:
        total: Counter[Any] = Counter()
        for r in self.rounds:
            total.update(getattr(r, attr))
        return total

    @property
    def orders(self) -> int:
        return sum(r.orders for r in self.rounds)

    def per_order(self, attr: str) -> dict[Any, float]:
        return {k: n / self.orders for k, n in self._sum(attr).most_common() if n}

    def total(self, attr: str) -> float:
        return sum(self._sum(attr).values()) / self.orders

    @property
    def rates(self) -> list[float]:
        return [r.booking.rate() for r in self.rounds]

    @property
    def submitted_rates(self) -> list[float]:
        return [r.booking.submitted_rate() for r in self.rounds]

    @property
    def cpu_ms(self) -> float:
        return sum(r.cpu_s for r in self.rounds) * 1000 / self.orders

    @property
    def sandbox_cpu_ms(self) -> float:
        return sum(r.sandbox_cpu_s for r in self.rounds) * 1000 / self.orders

    @property
    def redis_cpu_us(self) -> float:
        return sum(r.redis_cpu_s for r in self.rounds) * 1e6 / self.orders

    @property
    def rabbitmq_cpu_us(self) -> float:
        return sum(r.rabbitmq_cpu_s for r in self.rounds) * 1e6 / self.orders

    @property
    def latency(self) -> tuple[float, float, float]:
        """Won → written back to Salesforce, over the paced rounds."""
        return percentiles(sorted(v for r in self.paced for v in r.booking.latencies_ms()))

    @property
    def submitted_latency(self) -> tuple[float, float, float]:
        """Won → submitted in the ERP, over the paced rounds."""
        return percentiles(sorted(v for r in self.paced
                                  for v in r.booking.submitted_latencies_ms()))

    @property
    def memory(self) -> dict[str, Memory]:
        return max((r.memory for r in self.rounds),
                   key=lambda m: sum(x.rss_mib for x in m.values()))


def summarize(rounds: list[Round], sides: tuple[str, ...] = SIDES) -> dict[str, SideSummary]:
    return {side: SideSummary([r for r in rounds if r.side == side and r.kind == "saturation"],
                              [r for r in rounds if r.side == side and r.kind == "paced"])
            for side in sides}


def mem_total(memory: dict[str, Memory]) -> tuple[int, float, float]:
    return (sum(m.processes for m in memory.values()), sum(m.rss_mib for m in memory.values()),
            sum(m.pss_mib for m in memory.values()))


def _breakdown(per_order: dict[Any, float]) -> str:
    names = [(" ".join(k) if isinstance(k, tuple) else str(k), v) for k, v in per_order.items()]
    shown = [f"{k} {v:.2f}" for k, v in names[:TOP]]
    rest = sum(v for _, v in names[TOP:])
    return ", ".join(shown + ([f"other {rest:.2f}"] if rest else [])) or "none"


def print_report(rounds: list[Round], life: Life, *, sizes: dict[str, int]) -> None:
    print("\n| side | kind | orders | orders/s | won→booked p50 / p95 / p99 ms | SF calls/order "
          "| ERP calls/order | CPU ms/order | Redis commands/order | ERP duplicates refused |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rounds:
        print(r.line())
    s = summarize(rounds)
    ours, plain = s["ours"], s["plain"]
    paired = ratios_by_round(ours.rates, plain.rates)
    paired_erp = ratios_by_round(ours.submitted_rates, plain.submitted_rates)
    rows = _summary_rows(ours, plain)
    print(f"\nPer side (saturation rounds; latency from the paced rounds; the plain worker ran "
          f"-c {sizes.get('pool')} with {sizes.get('web')} web workers, as many as ours):")
    print("| per booked order | ours | plain | ours / plain |")
    print("|---|---|---|---|")
    for name, a, b, fmt in rows:
        ratio = f"{a / b:.2f}x" if b else "n/a"
        print(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |")
    for name, ratios in (("written back", paired), ("submitted in the ERP", paired_erp)):
        pairs = ", ".join(f"{x:.2f}x" for x in ratios)
        print(f"| orders/s {name}, paired rounds ours / plain | | | {pairs} |")
    lat = {k: s[k].latency for k in SIDES}
    rate = {k: statistics.mean(r.rate_per_s or 0 for r in s[k].paced) for k in SIDES}
    sub = {k: s[k].submitted_latency for k in SIDES}
    for name, got in (("won→submitted in the ERP", sub), ("won→written back to Salesforce", lat)):
        print(f"| {name} p50 / p95 / p99 ms at half the side's rate "
              f"| {'{:,.0f} / {:,.0f} / {:,.0f}'.format(*got['ours'])} ({rate['ours']:.1f}/s) "
              f"| {'{:,.0f} / {:,.0f} / {:,.0f}'.format(*got['plain'])} "
              f"({rate['plain']:.1f}/s) | {got['ours'][1] / got['plain'][1]:.2f}x (p95) |")
    _print_breakdowns(s)
    _print_steps(s)
    _print_hops(s["ours"])
    _print_memory(s)
    _print_life(life)
    _print_targets(ours, plain, paired, paired_erp, life)


def ratios_by_round(first: list[float], second: list[float]) -> list[float]:
    """The first side's rates over the second's, round by round."""
    return [a / b for a, b in zip(first, second, strict=False) if b]


def _summary_rows(ours: SideSummary, plain: SideSummary) -> list[tuple[str, float, float, str]]:
    return [
        ("orders/s at saturation, written back to Salesforce (median of rounds)",
         statistics.median(ours.rates), statistics.median(plain.rates), "{:.1f}"),
        ("orders/s at saturation, written back to Salesforce (best round)", max(ours.rates),
         max(plain.rates), "{:.1f}"),
        ("orders/s at saturation, submitted in the ERP (median of rounds)",
         statistics.median(ours.submitted_rates), statistics.median(plain.submitted_rates),
         "{:.1f}"),
        ("Salesforce calls to book", ours.total("sf"), plain.total("sf"), "{:.2f}"),
        ("ERP calls to book", ours.total("erp"), plain.total("erp"), "{:.2f}"),
        ("fleet CPU ms", ours.cpu_ms, plain.cpu_ms, "{:.1f}"),
        ("Redis CPU µs", ours.redis_cpu_us, plain.redis_cpu_us, "{:,.0f}"),
        ("sandbox CPU ms (both simulators, not a side's own)", ours.sandbox_cpu_ms,
         plain.sandbox_cpu_ms, "{:.1f}"),
        ("Redis commands", ours.total("redis"), plain.total("redis"), "{:.1f}"),
        ("fleet RSS MiB (all processes)", mem_total(ours.memory)[1],
         mem_total(plain.memory)[1], "{:,.0f}"),
        ("fleet PSS MiB (all processes)", mem_total(ours.memory)[2],
         mem_total(plain.memory)[2], "{:,.0f}"),
    ]


def _print_breakdowns(s: dict[str, SideSummary]) -> None:
    print("\nCalls per booked order, to book it (saturation rounds):")
    print("| side | Salesforce | ERP | Redis commands |")
    print("|---|---|---|---|")
    for side in SIDES:
        print(f"| {side} | {_breakdown(s[side].per_order('sf'))} "
              f"| {_breakdown(s[side].per_order('erp'))} "
              f"| {_breakdown(s[side].per_order('redis'))} |")


def _print_steps(s: dict[str, SideSummary]) -> None:
    print("\nStep times in the saturation rounds (Celery's own log lines, warm-up runs "
          "included; busy ms per booked order: pool time the step took):")
    print("| side | task | runs | median ms | p95 ms | busy ms per order |")
    print("|---|---|---|---|---|---|")
    for side in SIDES:
        times: dict[str, list[float]] = {}
        for r in s[side].rounds:
            for name, values in r.steps.items():
                times.setdefault(name, []).extend(values)
        for name, values in sorted(times.items()):
            _, p95, _ = percentiles(sorted(values))
            print(f"| {side} | {name} | {len(values)} | {statistics.median(values) * 1000:,.0f} "
                  f"| {p95 * 1000:,.0f} | {sum(values) * 1000 / s[side].orders:,.0f} |")


def _print_hops(ours: SideSummary) -> None:
    times: dict[str, list[float]] = {}
    for r in ours.paced:
        for label, values in r.hops.items():
            times.setdefault(label, []).extend(values)
    if not any(times.values()):
        return
    n = len(next(iter(times.values())))
    print(f"\nWhere a paced order's time goes, ours (paced rounds, {n} orders; the "
          "processes' own log lines, ms):")
    print("| segment | p50 | p95 |")
    print("|---|---|---|")
    for label, values in times.items():
        p50, p95, _ = percentiles(sorted(values))
        print(f"| {label} | {p50:,.0f} | {p95:,.0f} |")


def _print_memory(s: dict[str, SideSummary]) -> None:
    print("\nMemory per process type, end of the saturation round with the most:")
    print("| side | process type | processes | RSS MiB | PSS MiB |")
    print("|---|---|---|---|---|")
    for side in SIDES:
        for name, m in s[side].memory.items():
            print(f"| {side} | {name} | {m.processes} | {m.rss_mib:,.0f} | {m.pss_mib:,.0f} |")


def _print_life(life: Life) -> None:
    n = life.burst.orders
    print(f"\nOurs through the whole life: a lone order, then a burst of {n} booked, invoiced "
          f"({life.invoiced}) and paid ({life.paid} in full or in part):")
    print("| | Salesforce calls | ERP calls |")
    print("|---|---|---|")
    print(f"| lone order, to book | {life.lone.per_order(life.lone.sf):.2f} "
          f"| {life.lone.per_order(life.lone.erp):.2f} |")
    print(f"| burst, per order, to book | {life.burst.per_order(life.burst.sf):.2f} "
          f"| {life.burst.per_order(life.burst.erp):.2f} |")
    print(f"| burst, per order, whole life | {sum(life.sf.values()) / n:.2f} "
          f"| {sum(life.erp.values()) / n:.2f} |")
    sf = {k: v / n for k, v in life.sf.most_common()}
    erp = {k: v / n for k, v in life.erp.most_common()}
    print(f"| whole life, by call | {_breakdown(sf)} | {_breakdown(erp)} |")
    print(f"| lone order, by call | {_breakdown(dict(life.lone.sf.most_common()))} "
          f"| {_breakdown(dict(life.lone.erp.most_common()))} |")


def _print_targets(ours: SideSummary, plain: SideSummary, paired: list[float],
                   paired_erp: list[float], life: Life) -> None:
    n = life.burst.orders
    rss = mem_total(ours.memory)[1]
    targets = [
        ("Salesforce calls per order, whole life, burst", "≤ 0.5",
         sum(life.sf.values()) / n, 0.5),
        ("Salesforce calls to book one lone order", "≤ 2", life.lone.per_order(life.lone.sf), 2),
        ("ERP calls per order to book, warm", "≤ 3", ours.total("erp"), 3),
        ("ERP calls per order, whole life", "≤ 6", sum(life.erp.values()) / n, 6),
        ("throughput at saturation, submitted in the ERP, ours / plain (median of paired "
         "rounds)", "≥ 1.5x", statistics.median(paired_erp) if paired_erp else float("nan"),
         -1.5),
        ("throughput at saturation, written back, ours / plain (median of paired rounds)",
         "≥ 1.5x", statistics.median(paired) if paired else float("nan"), -1.5),
        ("won→booked (submitted in the ERP) p95 at half our rate, ms", "≤ 150",
         ours.submitted_latency[1], 150),
        ("won→written back to Salesforce p95 at half our rate, ms", "≤ 150",
         ours.latency[1], 150),
        ("fleet CPU per order, ours / plain", "≤ 1.2x", ours.cpu_ms / plain.cpu_ms, 1.2),
        ("RSS of our default fleet, GiB", "< 1.0", rss / 1024, 1.0),
    ]
    print("\nIssue 16's targets:")
    print("| target | wanted | measured | met |")
    print("|---|---|---|---|")
    for name, wanted, value, bound in targets:
        met = value >= -bound if bound < 0 else value <= bound
        print(f"| {name} | {wanted} | {value:,.2f} | {'yes' if met else 'no'} |")
