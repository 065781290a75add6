"""Ingest benchmark: our receiver against the receiver a team would write first.

Both run under gunicorn with the same worker count against the same Redis, side by side in
one run, alternating rounds so that machine noise hits both alike.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import requests

from o2c_workers.redis_runtime import ensure_redis, free_port, with_db
from tests import soapmsg
from tests.bench.load import LoadResult, build_requests, run_load

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bench-token"
BENCH_DB = 14
#: Both sides run with the receiver's shipped gunicorn settings (config/gunicorn.py: gthread
#: workers with keep-alive, an access log) plus these.
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


def start_gunicorn(name: str, target: str, redis_url: str, *, workers: int) -> Server:
    port = free_port()
    env = dict(os.environ, O2C_REDIS_URL=redis_url, O2C_WEBHOOK_TOKEN=TOKEN,
               O2C_SALESFORCE_ORG_IDS=soapmsg.ORG_ID, O2C_LOG_LEVEL=LOG_LEVEL,
               PYTHONPATH=str(ROOT))
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

    def __init__(self, size: int) -> None:
        self.size = size
        self.counter = itertools.count()
        self.lock = threading.Lock()

    def __call__(self) -> bytes:
        with self.lock:
            first = next(self.counter) * self.size
        items = []
        for n in range(first, first + self.size):
            fields = soapmsg.opportunity(0, Id=f"006{n:012d}")
            items.append(soapmsg.notification(f"04l{n:015d}", "Opportunity", fields))
        return soapmsg.envelope(items)


#: Enough messages that no run reuses one (a reused id would let dedupe skip work).
POOL_NOTIFICATIONS = 120_000


def measure(server: Server, bodies: Bodies, *, connections: int,
            duration_s: float) -> LoadResult:
    url = f"{server.url}/salesforce/outbound?token={TOKEN}"
    pool = build_requests(url, [bodies() for _ in range(POOL_NOTIFICATIONS // bodies.size)])
    return run_load(url, pool, connections=connections, duration_s=duration_s)


def main(*, quick: bool = False) -> list[dict[str, object]]:
    handle = ensure_redis()
    url = with_db(handle.url, BENCH_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    workers = int(os.environ.get("BENCH_GUNICORN_WORKERS", "2"))
    ours = start_gunicorn("o2c-workers", "o2c_workers.wsgi:create_app()", url, workers=workers)
    base = start_gunicorn("baseline (Flask + ElementTree + send_task)",
                          "tests.bench.baseline_app:flask_app", url, workers=workers)
    duration = 2.0 if quick else 5.0
    rounds = 1 if quick else 2
    rows = []
    try:
        for size, connections in ((1, 8), (100, 8)):
            results: dict[str, list[LoadResult]] = {ours.name: [], base.name: []}
            bodies = Bodies(size)
            for _ in range(rounds):
                for server in (ours, base):
                    client.flushdb()
                    results[server.name].append(
                        measure(server, bodies, connections=connections, duration_s=duration))
            best = {name: max(runs, key=lambda r: r.rps) for name, runs in results.items()}
            o, b = best[ours.name], best[base.name]
            rows.append({
                "notifications_per_message": size, "connections": connections,
                "ours_nps": o.rps * size, "base_nps": b.rps * size,
                "ratio": (o.rps * size) / (b.rps * size) if b.rps else float("inf"),
                "ours_p50": o.p50, "ours_p99": o.p99, "base_p50": b.p50, "base_p99": b.p99,
                "errors": o.errors + b.errors,
            })
    finally:
        ours.stop()
        base.stop()
        client.flushdb()
        handle.stop()
    print(f"\nIngest: gunicorn -w {workers} each, same Redis, {rounds} alternating round(s) of "
          f"{duration:.0f} s, best round reported")
    print("| notifications/message | connections | ours notif/s | baseline notif/s | ratio "
          "| ours p50 / p99 ms | baseline p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['notifications_per_message']} | {r['connections']} "
              f"| {r['ours_nps']:,.0f} | {r['base_nps']:,.0f} | {r['ratio']:.1f}x "
              f"| {r['ours_p50']:.1f} / {r['ours_p99']:.1f} "
              f"| {r['base_p50']:.1f} / {r['base_p99']:.1f} |")
    return rows
