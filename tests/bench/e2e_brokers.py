"""End to end on both brokers: our fleet on Redis against the same fleet on RabbitMQ,
side by side in one run on the same sandbox, state Redis and machine, alternating rounds.

``python -m tests.bench e2e_brokers [--quick]`` (part of ``make bench``). Both sides are the
Procfile's ``web`` line and every worker line with the shipped defaults; the RabbitMQ side
sets only ``O2C_BROKER_URL``, to a vhost of the machine's node (``O2C_TEST_AMQP_URL``,
default ``amqp://guest:guest@127.0.0.1:5672``) made for the run and deleted after. The
rounds are the end-to-end benchmark's (``tests.bench.e2e``): a burst at saturation, then
opportunities won one at a time at half the side's own rate, each checked for one ERP order
per opportunity. The broker's cost is counted with the side: Redis CPU on both, the RabbitMQ
node's CPU on the RabbitMQ side (the node serves nothing else during the run).
"""

from __future__ import annotations

import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path

from tests.bench.e2e import bench
from tests.bench.e2e_report import Round, SideSummary, mem_total, ratios_by_round, summarize
from tests.bench.e2e_rounds import FULL, QUICK, alternate
from tests.bench.e2e_sides import Side
from tests.rabbitmq import NoRabbitMQ, ctl, virtual_host

SIDES = ("redis", "rabbitmq")


def node_pid() -> int:
    """The OS process of the RabbitMQ node the vhost lives on."""
    return int(ctl("eval", "os:getpid().").strip().strip('"'))


def main(*, quick: bool = False) -> list[Round]:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = QUICK if quick else FULL
    log_root = Path(tempfile.mkdtemp(prefix="o2c-bench-e2e-brokers-"))
    print(f"\nload average at the start: {Path('/proc/loadavg').read_text().strip()}")
    print(f"End to end on both brokers: {plan.rounds} round(s) per side and kind, bursts of "
          f"{plan.burst}, {plan.paced} paced; logs in {log_root}", flush=True)
    try:
        with virtual_host(prefix="o2c-bench-e2e") as vhost:
            def sides(port: int) -> dict[str, Side]:
                return {"redis": Side("redis", "ours on Redis", port),
                        "rabbitmq": Side("rabbitmq", "ours on RabbitMQ", port,
                                         env={"O2C_BROKER_URL": vhost.url})}

            with bench(plan, log_root, sides) as (b, made):
                b.rabbitmq_pid = node_pid()
                rounds = alternate(b, [made["redis"], made["rabbitmq"]])
    except NoRabbitMQ as exc:
        print(f"\nEnd to end on both brokers: skipped, {exc}")
        shutil.rmtree(log_root, ignore_errors=True)
        return []
    except BaseException:
        print(f"(logs kept in {log_root})", file=sys.stderr)
        raise
    print(f"load average at the end: {Path('/proc/loadavg').read_text().strip()}")
    print_report(rounds)
    shutil.rmtree(log_root, ignore_errors=True)
    return rounds


def rows(redis: SideSummary, rabbit: SideSummary) -> list[tuple[str, float, float, str]]:
    return [
        ("booked orders/s at saturation (median of rounds)", statistics.median(redis.rates),
         statistics.median(rabbit.rates), "{:.1f}"),
        ("booked orders/s at saturation (best round)", max(redis.rates), max(rabbit.rates),
         "{:.1f}"),
        ("won→booked p50 ms at half the side's rate", redis.latency[0], rabbit.latency[0],
         "{:,.0f}"),
        ("won→booked p95 ms at half the side's rate", redis.latency[1], rabbit.latency[1],
         "{:,.0f}"),
        ("won→booked p99 ms at half the side's rate", redis.latency[2], rabbit.latency[2],
         "{:,.0f}"),
        ("Salesforce calls per booked order", redis.total("sf"), rabbit.total("sf"), "{:.2f}"),
        ("ERP calls per booked order", redis.total("erp"), rabbit.total("erp"), "{:.2f}"),
        ("fleet CPU ms per order", redis.cpu_ms, rabbit.cpu_ms, "{:.1f}"),
        ("Redis commands per order (state, and the queues on Redis)", redis.total("redis"),
         rabbit.total("redis"), "{:.1f}"),
        ("Redis CPU µs per order", redis.redis_cpu_us, rabbit.redis_cpu_us, "{:,.0f}"),
        ("RabbitMQ node CPU µs per order", redis.rabbitmq_cpu_us, rabbit.rabbitmq_cpu_us,
         "{:,.0f}"),
        ("fleet RSS MiB (all processes)", mem_total(redis.memory)[1],
         mem_total(rabbit.memory)[1], "{:,.0f}"),
    ]


def print_report(rounds: list[Round]) -> None:
    print("\n| side | kind | orders | orders/s | won→booked p50 / p95 / p99 ms | SF calls/order "
          "| ERP calls/order | CPU ms/order | Redis commands/order | ERP duplicates refused |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rounds:
        print(r.line())
    s = summarize(rounds, SIDES)
    redis, rabbit = s["redis"], s["rabbitmq"]
    paired = ratios_by_round(rabbit.rates, redis.rates)
    print("\nPer side (saturation rounds; latency from the paced rounds):")
    print("| | on Redis | on RabbitMQ | RabbitMQ / Redis |")
    print("|---|---|---|---|")
    for name, a, b, fmt in rows(redis, rabbit):
        ratio = f"{b / a:.2f}x" if a else "n/a"
        print(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |")
    pairs = ", ".join(f"{x:.2f}x" for x in paired)
    median = statistics.median(paired) if paired else float("nan")
    print(f"| orders/s, paired rounds RabbitMQ / Redis | | | {pairs} (median {median:.2f}x) |")
