"""Delivery benchmark: the fleet's reliable Redis transport against kombu's stock one.

Both sides run the same real ``celery -A o2c_workers worker`` subprocesses (prefork, the
Procfile's layout and the shipped settings) on the same private Redis; only
``O2C_RELIABLE_DELIVERY`` differs. Each round pre-loads the queue, starts the workers and
times, from inside the tasks, how fast they drain it once running; rounds alternate
(reliable first, then stock first) so that drift hits both sides alike. Three workloads:

- no-op tasks, one worker on the ``order`` queue;
- a four-step chain across the domain queues (customer → pricing → order → order
  write-back), one worker per queue;
- the real O2C chain against the sandbox (``delivery_o2c``), on the same workers.

Redis's own ``INFO commandstats`` over each round (commands inside Lua scripts included)
says what each side asks of Redis per message.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from config import Settings
from o2c_workers import app as celery_app
from o2c_workers import keys
from o2c_workers.dev.fleet import Fleet
from o2c_workers.dev.redis_runtime import start_private, with_db
from o2c_workers.enqueue import MessageFactory
from tests.bench import commandstats
from tests.bench.delivery_o2c import o2c_workload
from tests.bench.delivery_report import Round, Summary, print_tables, summarize
from tests.bench.delivery_tasks import DONE_KEY, MARKS_KEY, O2C_MARKS_KEY
from tests.bench.delivery_workloads import WORKLOADS, Workload
from tests.bench.procstat import children, cpu_seconds, redis_cpu_seconds

ROOT = Path(__file__).resolve().parents[2]
BENCH_DB = 9
#: Prefork processes per worker for these queues: the benchmark's own figure, the same for
#: both transports.
CONCURRENCY = 4
#: Share of a round's work done before the clock starts: the workers are up and busy.
WARMUP_SHARE = 0.1
#: How often the benchmark looks at the count of finished work, in seconds.
POLL_S = 0.05
#: Wait after the last count before reading Redis's counters: the last acks land.
SETTLE_S = 0.5
PUSH_BATCH = 500


@dataclass(frozen=True)
class Side:
    name: str
    reliable: bool

    @property
    def label(self) -> str:
        return "reliable" if self.reliable else "stock"

    def env(self, redis_url: str) -> dict[str, str]:
        """The bench's environment without its own ``O2C_*`` settings (shipped defaults),
        pointed at the bench Redis, with this side's transport."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("O2C_")}
        return {**base, "PYTHONPATH": str(ROOT), "O2C_REDIS_URL": redis_url,
                "O2C_RELIABLE_DELIVERY": "true" if self.reliable else "false"}


SIDES = (Side("reliable (o2c_workers.delivery)", True), Side("stock kombu redis", False))


def preload(client: redis.Redis, workload: Workload, units: int, marks: list[int]) -> None:
    factory = MessageFactory(celery_app)
    pipe = client.pipeline(transaction=False)
    pipe.set(O2C_MARKS_KEY, json.dumps(marks))
    envelopes: list[str] = []
    for n, (trace_key, payload) in enumerate(workload.payloads(units, marks)):
        msg = factory.build(workload.tasks[0], args=[payload], trace_key=trace_key,
                            then=workload.tasks[1:])
        envelopes.append(msg.envelope)
        if len(envelopes) == PUSH_BATCH or n == units - 1:
            pipe.lpush(msg.key, *envelopes)
            envelopes = []
    pipe.execute()


def leftover(client: redis.Redis, queues: Sequence[str]) -> int:
    """Messages still queued, held (reliable) or unacked (stock)."""
    pattern = keys.delivery_held(Settings().key_prefix, "*", "*")
    held = [key.decode() for key in client.scan_iter(match=pattern)]
    lists = [*queues, *held]
    return sum(int(client.llen(k)) for k in lists) + int(client.hlen("unacked"))


#: Units done so far, and the CPU readings of ``Probe.cpu`` at that moment.
Reading = tuple[int, tuple[float, float, float]]


class Probe:
    """The benchmark's own reads during a round, counted so Redis's totals can leave them
    out."""

    def __init__(self, client: redis.Redis, pids: list[int]) -> None:
        self.client, self.pids = client, pids
        self.own = Counter({"config|resetstat": 1})

    def done(self) -> int:
        self.own["get"] += 1
        return int(self.client.get(DONE_KEY) or 0)

    def cpu(self) -> tuple[float, float, float]:
        """CPU so far of the workers' main processes, their pools, and Redis."""
        self.own["info"] += 1
        pool = [child for pid in self.pids for child in children(pid)]
        return cpu_seconds(self.pids), cpu_seconds(pool), redis_cpu_seconds(self.client)

    def watch(self, warm: int, units: int, *, timeout_s: float) -> tuple[Reading, Reading] | None:
        """The count and CPU readings once ``warm`` units are done and once all are, or
        None if the workers do not get there in time."""
        deadline = time.monotonic() + timeout_s
        at_warm: Reading | None = None
        while time.monotonic() < deadline:
            done = self.done()
            if at_warm is None and done >= warm:
                at_warm = (done, self.cpu())
            if done >= units and at_warm is not None:
                return at_warm, (done, self.cpu())
            time.sleep(POLL_S)
        return None


def run_round(side: Side, workload: Workload, client: redis.Redis, redis_url: str,
              units: int, log_dir: Path) -> Round:
    client.flushdb()
    warm = max(1, int(units * WARMUP_SHARE))
    preload(client, workload, units, [warm, units])
    client.config_resetstat()  # counted: Probe leaves it out
    fleet = Fleet(env={**side.env(redis_url), **workload.env()}, log_dir=log_dir)
    try:
        workers = [fleet.start_worker(queue, concurrency=CONCURRENCY,
                                      extra=["-I", "tests.bench.delivery_tasks"])
                   for queue in workload.queues]
        for worker in workers:
            worker.wait_ready()
        probe = Probe(client, [w.pid for w in workers])
        seen = probe.watch(warm, units, timeout_s=60 + units * workload.steps / 20)
        if seen is None:
            raise RuntimeError(f"{side.name}: {probe.done()} of {units} {workload.unit}s "
                               f"done in time:\n{workers[0].log_tail()}")
        at_warm, at_end = seen
        time.sleep(SETTLE_S)
        commands = commandstats.calls(client) - probe.own
        extra_runs, left = probe.done() - units, leftover(client, workload.queues)
    finally:
        fleet.stop()
    marks = {int(k): float(v) for k, v in client.hgetall(MARKS_KEY).items()}
    measured = (at_end[0] - at_warm[0]) * workload.steps or 1
    main_s, pool_s, redis_s = (b - a for a, b in zip(at_warm[1], at_end[1], strict=True))
    return Round(side=side.name, units=units - warm, seconds=marks[units] - marks[warm],
                 commands=commands, redis_us=redis_s * 1e6 / measured,
                 main_us=main_s * 1e6 / measured, pool_us=pool_s * 1e6 / measured,
                 extra_runs=extra_runs, left=left)


def compare(workload: Workload, client: redis.Redis, redis_url: str, *, units: int,
            rounds: int, log_root: Path) -> Summary:
    """Alternate rounds (reliable first, then stock first) so that drift hits both."""
    results: dict[str, list[Round]] = {side.name: [] for side in SIDES}
    for index in range(rounds):
        for side in SIDES if index % 2 == 0 else SIDES[::-1]:
            log_dir = log_root / f"{workload.unit}-{index}-{side.label}"
            results[side.name].append(
                run_round(side, workload, client, redis_url, units, log_dir))
    return summarize(workload.name, workload.unit, workload.steps, units,
                     results[SIDES[0].name], results[SIDES[1].name])


def main(*, quick: bool = False) -> list[Summary]:
    handle = start_private()
    url = with_db(handle.url, BENCH_DB)
    client = redis.Redis.from_url(url)
    rounds = 1 if quick else 4
    log_root = Path(tempfile.mkdtemp(prefix="o2c-bench-delivery-"))

    def run(n: int, workload: Workload) -> Summary:
        return compare(workload, client, url, units=workload.units(quick=quick),
                       rounds=rounds, log_root=log_root / str(n))

    try:
        rows = [run(n, workload) for n, workload in enumerate(WORKLOADS)]
        with o2c_workload(rounds=rounds) as o2c:
            rows.append(run(len(rows), o2c))
    finally:
        client.close()
        handle.stop()
        shutil.rmtree(log_root, ignore_errors=True)
    print_tables(rows, rounds=rounds, concurrency=CONCURRENCY)
    return rows
