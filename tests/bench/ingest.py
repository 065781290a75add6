"""Ingest benchmark: our receiver against the receiver a team would write first.

Both run under gunicorn with the same worker count against the same Redis, side by side in
one run, alternating rounds so that machine noise hits both alike.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import requests

from o2c_workers.dev.redis_runtime import ensure_redis, free_port, with_db
from tests import soapmsg
from tests.bench.load import LoadResult, build_requests, run_load
from tests.bench.procstat import children, cpu_seconds, redis_cpu_seconds

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bench-token"
BENCH_DB = 14
#: Both sides run with the receiver's shipped gunicorn settings (config/gunicorn.py: gevent
#: workers with keep-alive) plus these.
GUNICORN_ARGS = os.environ.get("BENCH_GUNICORN_ARGS", "").split()
#: Our receiver logs one JSON line per notification at INFO, as in production.
LOG_LEVEL = os.environ.get("BENCH_LOG_LEVEL", "INFO")


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_gunicorn(name: str, target: str, redis_url: str, *, workers: int,
                   env: dict[str, str] | None = None) -> Server:
    port = free_port()
    env = dict(os.environ, O2C_REDIS_URL=redis_url, O2C_WEBHOOK_TOKEN=TOKEN,
               O2C_SALESFORCE_ORG_IDS=soapmsg.ORG_ID, O2C_LOG_LEVEL=LOG_LEVEL,
               PYTHONPATH=str(ROOT), **(env or {}))
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", target, "-b",
         f"127.0.0.1:{port}", "-w", str(workers), *GUNICORN_ARGS],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/", timeout=2)
            return Server(name, process, url)
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{name} did not start")


class Bodies:
    """Outbound messages with fresh notification and record ids, so dedupe never helps."""

    RECORD, NOTIFICATION, SLOT = "006RECORDIDHERE", "04lNOTIFICATIONID0", "<!--items-->"

    def __init__(self, size: int) -> None:
        self.size = size
        self.counter = itertools.count()
        self.lock = threading.Lock()
        fields = soapmsg.opportunity(0, Id=self.RECORD)
        self.item = soapmsg.notification(self.NOTIFICATION, "Opportunity", fields)
        self.head, _, self.tail = soapmsg.envelope([self.SLOT]).partition(self.SLOT.encode())

    def __call__(self) -> bytes:
        with self.lock:
            first = next(self.counter) * self.size
        items = "".join(
            self.item.replace(self.NOTIFICATION, f"04l{n:015d}").replace(self.RECORD,
                                                                         f"006{n:012d}")
            for n in range(first, first + self.size))
        return self.head + items.encode() + self.tail


#: Notifications per second of a round that no run here comes near; each round gets this
#: many fresh ones per second of its length (a reused id would let dedupe skip work).
POOL_NOTIFICATIONS_PER_S = 40_000


def worker_pids(server: Server) -> list[int]:
    """The gunicorn workers of ``server``: the children of its arbiter (Linux /proc)."""
    return children(server.process.pid)


@dataclass
class Round:
    """One measured round, with the CPU its server's workers and Redis spent per request."""

    load: LoadResult
    worker_us: float
    redis_us: float


def measure_round(server: Server, bodies: Bodies, client: redis.Redis, *, connections: int,
                  duration_s: float) -> Round:
    pids = worker_pids(server)
    url = f"{server.url}/salesforce/outbound?token={TOKEN}"
    count = int(POOL_NOTIFICATIONS_PER_S * duration_s) // bodies.size
    pool = build_requests(url, [bodies() for _ in range(count)])
    workers_before, redis_before = cpu_seconds(pids), redis_cpu_seconds(client)
    load = run_load(url, pool, connections=connections, duration_s=duration_s)
    requests_done = max(load.requests, 1)
    return Round(load, (cpu_seconds(pids) - workers_before) * 1e6 / requests_done,
                 (redis_cpu_seconds(client) - redis_before) * 1e6 / requests_done)


def worker_counts() -> list[int]:
    raw = os.environ.get("BENCH_GUNICORN_WORKERS", "1,2")
    return [int(part) for part in raw.split(",") if part.strip()]


def compare(ours: Server, base: Server, client: redis.Redis, *, size: int, connections: int,
            rounds: int, duration_s: float,
            between: Callable[[], None] | None = None) -> dict[str, Any]:
    """Alternate rounds (ours first, then the baseline first) so that drift hits both;
    ``between`` empties anything else a round fills (a broker's queues)."""
    bodies = Bodies(size)
    rounds_of: dict[str, list[Round]] = {ours.name: [], base.name: []}
    for index in range(rounds):
        for server in ((ours, base) if index % 2 == 0 else (base, ours)):
            client.flushdb()
            if between is not None:
                between()
            rounds_of[server.name].append(measure_round(
                server, bodies, client, connections=connections, duration_s=duration_s))
    ours_runs = [r.load for r in rounds_of[ours.name]]
    base_runs = [r.load for r in rounds_of[base.name]]
    o = max(ours_runs, key=lambda r: r.rps)
    b = max(base_runs, key=lambda r: r.rps)
    paired = [x.rps / y.rps for x, y in zip(ours_runs, base_runs, strict=True) if y.rps]
    return {
        "notifications_per_message": size, "connections": connections,
        "ours_nps": o.rps * size, "base_nps": b.rps * size,
        "ratio": o.rps / b.rps if b.rps else float("inf"),
        "paired_median": statistics.median(paired) if paired else float("nan"),
        "paired_min": min(paired, default=float("nan")),
        "ours_p50": o.p50, "ours_p99": o.p99, "base_p50": b.p50, "base_p99": b.p99,
        "errors": sum(r.errors for r in ours_runs + base_runs),
        "ours_worker_us": statistics.median(r.worker_us for r in rounds_of[ours.name]),
        "base_worker_us": statistics.median(r.worker_us for r in rounds_of[base.name]),
        "ours_redis_us": statistics.median(r.redis_us for r in rounds_of[ours.name]),
        "base_redis_us": statistics.median(r.redis_us for r in rounds_of[base.name]),
    }


def main(*, quick: bool = False) -> list[dict[str, object]]:
    handle = ensure_redis()
    url = with_db(handle.url, BENCH_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    duration = 1.5 if quick else 3.0
    rounds = 2 if quick else 6
    rows: list[dict[str, Any]] = []
    floors: dict[int, Round] = {}
    try:
        for workers in worker_counts():
            ours = start_gunicorn("o2c-workers", "o2c_workers.wsgi:create_app()", url,
                                  workers=workers)
            base = start_gunicorn("baseline (Flask + ElementTree + .delay())",
                                  "tests.bench.baseline_app:flask_app", url, workers=workers)
            floor = start_gunicorn("body-only app", "tests.bench.baseline_app:floor_app", url,
                                   workers=workers)
            try:
                for size in (1, 100):
                    row = compare(ours, base, client, size=size, connections=8,
                                  rounds=rounds, duration_s=duration)
                    rows.append({"workers": workers, **row})
                floors[workers] = max(
                    (measure_round(floor, Bodies(1), client, connections=8,
                                   duration_s=duration) for _ in range(rounds // 2 or 1)),
                    key=lambda r: r.load.rps)
            finally:
                ours.stop()
                base.stop()
                floor.stop()
    finally:
        client.flushdb()
        handle.stop()
    print(f"\nIngest: gunicorn with config/gunicorn.py, same Redis, {rounds} alternating "
          f"round(s) of {duration:.1f} s per side; best round of each side, and the median "
          "and lowest ratio of rounds run back to back")
    print("| workers per side | notifications/message | connections | ours notif/s "
          "| baseline notif/s | ratio (best) | ratio (median, lowest) "
          "| ours p50 / p99 ms | baseline p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['notifications_per_message']} | {r['connections']} "
              f"| {r['ours_nps']:,.0f} | {r['base_nps']:,.0f} | {r['ratio']:.1f}x "
              f"| {r['paired_median']:.1f}x, {r['paired_min']:.1f}x "
              f"| {r['ours_p50']:.1f} / {r['ours_p99']:.1f} "
              f"| {r['base_p50']:.1f} / {r['base_p99']:.1f} |")
    print("\nCPU per message (median of the rounds above), of the server's workers and of "
          "Redis; the floor is an app that only reads the body and answers the Ack, under "
          "the same server")
    print("| workers per side | notifications/message | ours: workers / Redis µs "
          "| baseline: workers / Redis µs | workers alone, ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['notifications_per_message']} "
              f"| {r['ours_worker_us']:,.0f} / {r['ours_redis_us']:,.0f} "
              f"| {r['base_worker_us']:,.0f} / {r['base_redis_us']:,.0f} "
              f"| {r['base_worker_us'] / max(r['ours_worker_us'], 1):.1f}x |")
    for workers, floor_round in floors.items():
        print(f"| {workers} | floor | {floor_round.worker_us:,.0f} / "
              f"{floor_round.redis_us:,.0f} "
              f"({floor_round.load.rps:,.0f} requests/s) | | |")
    return rows
