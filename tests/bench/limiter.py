"""Limiter benchmark: our fleet-wide limiter against Celery's per-worker ``rate_limit``.

Two worker nodes of two processes each make ERP calls (one Sales Order lookup per task)
against a fresh ERP simulator per side, with a limit of 20 calls per second:

- ours: ``O2C_ERP_RATE_LIMIT=20/second``, every call through the adapter's limiter;
- Celery: ``rate_limit="20/s"`` on the task, the adapter with no limit set (pauses only);
- Celery split: ``rate_limit="10/s"``, the limit divided by hand among the two nodes.

Peak is the most calls the simulator received in any sliding 1-second window. The achieved
rate is the calls from the first to the last, as the simulator recorded them; since every
side may start with a burst of one window's worth, utilization is the sustained rate (after
the first ``LIMIT_PER_S`` calls) over the limit.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
import requests

from o2c_workers import app as celery_app
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.dev.fleet import ManagedProcess
from o2c_workers.dev.redis_runtime import ensure_redis, with_db
from o2c_workers.enqueue import MessageFactory
from o2c_workers.sandbox.erp import ErpConfig, serve_erp
from o2c_workers.sandbox.world import generate_world
from tests.erp_probe_tasks import DONE_KEY
from tests.plugins.workers import start_worker

BENCH_DB = int(os.environ.get("BENCH_LIMITER_DB", "11"))
LIMIT_PER_S = 20
NODES, PROCESSES = 2, 2
#: Latency the simulator adds to each call, in ms: an ERP answers in tens of ms.
ERP_LATENCY_MS = 20.0


@dataclass(frozen=True)
class Side:
    name: str
    task: str
    env: dict[str, str]


SIDES = (
    Side("ours (fleet-wide, 20/second)", "o2c.order.erp_probe",
         {"O2C_ERP_RATE_LIMIT": f"{LIMIT_PER_S}/second"}),
    Side("Celery rate_limit='20/s'", "o2c.order.erp_probe_celery_limited", {}),
    Side("Celery rate_limit='10/s' (20 / 2 nodes)", "o2c.order.erp_probe_celery_split", {}),
)


def run_side(side: Side, client: redis.Redis, redis_url: str, calls: int) -> dict[str, Any]:
    client.flushdb()
    world = generate_world(seed=11, accounts=10, opportunities=30)
    erp = serve_erp(world.erp, ErpConfig(faults={"latency_ms": ERP_LATENCY_MS},
                                         invoice_delay_s=600.0, payment_delay_s=600.0), port=0)
    env = {"O2C_ERP_BASE_URL": erp.url, "O2C_ERP_API_KEY": "sandbox-key",
           "O2C_ERP_API_SECRET": "sandbox-secret", "O2C_LOG_LEVEL": "INFO",
           "O2C_KEY_PREFIX": f"bench{uuid.uuid4().hex[:8]}",
           # Only the probes' calls are measured: no check of the ERP's setup at start.
           "O2C_ERP_CHECK_UNIQUE_IDS": "false", **side.env}
    workers: list[ManagedProcess] = []
    try:
        workers = [start_worker(redis_url, queues="order", concurrency=PROCESSES,
                                include="tests.erp_probe_tasks", env=env, wait=False)
                   for _ in range(NODES)]
        for worker in workers:
            worker.wait_ready(timeout_s=60)
        factory = MessageFactory(celery_app)
        ops = [factory.build(side.task, args=[{"id": n}], trace_key=f"bench:{n}").push_op()
               for n in range(calls)]
        AtomicWriter(client).run([Item(["always"], ops)])
        # Twice the time the limit needs: a side that is slower is cut off and says so.
        deadline = time.monotonic() + calls / LIMIT_PER_S * 2 + 5
        while client.llen(DONE_KEY) < calls and time.monotonic() < deadline:
            time.sleep(0.2)
        stats = requests.get(f"{erp.url}/_sandbox/stats", timeout=10).json()
        record = requests.get(f"{erp.url}/_sandbox/calls", timeout=30).json()["calls"]
    finally:
        for worker in workers:
            worker.stop()
        erp.stop()
    times = sorted(c["time"] for c in record)
    span_s = times[-1] - times[0]
    achieved = (len(times) - 1) / span_s
    sustained = (len(times) - 1 - LIMIT_PER_S) / (times[-1] - times[LIMIT_PER_S])
    return {"name": side.name, "calls": len(times), "done": client.llen(DONE_KEY),
            "span_s": span_s, "achieved": achieved,
            "sustained": sustained, "peak": stats["peak_requests_per_s"]["received"],
            "utilization": sustained / LIMIT_PER_S}


def main(*, quick: bool = False) -> list[dict[str, Any]]:
    handle = ensure_redis()
    url = with_db(handle.url, BENCH_DB)
    client = redis.Redis.from_url(url)
    calls = 100 if quick else 500
    try:
        rows = [run_side(side, client, url, calls) for side in SIDES]
    finally:
        client.flushdb()
        handle.stop()
    print(f"\nLimiter: {NODES} worker nodes x {PROCESSES} processes, {calls} ERP calls per "
          f"side, a limit of {LIMIT_PER_S}/s, a fresh ERP simulator per side "
          f"({ERP_LATENCY_MS:.0f} ms per call)")
    print("| side | calls done | peak calls in any 1 s | peak / limit | calls/s first to last "
          "| sustained calls/s | utilization |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['done']} of {calls} in {r['span_s']:.1f} s | {r['peak']} "
              f"| {r['peak'] / LIMIT_PER_S:.2f}x | {r['achieved']:.1f} | {r['sustained']:.1f} "
              f"| {r['utilization']:.0%} |")
    return rows
