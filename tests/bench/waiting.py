"""Waiting benchmark: a month-end burst against a low ERP limit, under the shipped retry policy.

One worker node of many threads (an autoscaled fleet, in one process) drains a backlog of
ERP steps against an ERP simulator that enforces its limit; the fleet's limiter is set to the
same limit. Far more steps wait at the limiter than it serves within a step's wait (5 s),
so most acquires give up. The table says how the burst ends: steps done, the attempts that
waiting cost them, dead letters by category, and whether the ERP ever saw more than its limit.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import redis
import requests

from o2c_workers import app as celery_app
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.dev.redis_runtime import ensure_redis, with_db
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.enqueue import MessageFactory
from o2c_workers.sandbox.erp import ErpConfig, serve_erp
from o2c_workers.sandbox.world import generate_world
from tests.erp_probe_tasks import DONE_KEY
from tests.plugins.workers import start_worker

BENCH_DB = int(os.environ.get("BENCH_WAITING_DB", "11"))
TASK = "o2c.order.erp_probe_shipped"
LIMIT_PER_S = 2
THREADS = 80
#: How long the run may take beyond what the limit needs, in seconds.
SLACK_S = 420.0


def run(client: redis.Redis, redis_url: str, steps: int) -> dict[str, Any]:
    client.flushdb()
    world = generate_world(seed=11, accounts=10, opportunities=30)
    erp = serve_erp(world.erp, ErpConfig(faults={"rate_limit_per_s": LIMIT_PER_S},
                                         invoice_delay_s=600.0, payment_delay_s=600.0), port=0)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = {"O2C_ERP_BASE_URL": erp.url, "O2C_ERP_API_KEY": "sandbox-key",
           "O2C_ERP_API_SECRET": "sandbox-secret", "O2C_LOG_LEVEL": "INFO",
           "O2C_KEY_PREFIX": prefix, "O2C_ERP_RATE_LIMIT": f"{LIMIT_PER_S}/second",
           "O2C_ERP_RATE_MARGIN_S": "0.15"}
    worker = start_worker(redis_url, queues="order", concurrency=THREADS, pool="threads",
                          include="tests.erp_probe_tasks", env=env, wait=False)
    store = DeadLetterStore(client, prefix=prefix)
    try:
        worker.wait_ready(timeout_s=60)
        factory = MessageFactory(celery_app)
        ops = [factory.build(TASK, args=[{"id": n}], trace_key=f"bench:{n}").push_op()
               for n in range(steps)]
        AtomicWriter(client).run([Item(["always"], ops)])
        started = time.monotonic()
        deadline = started + steps / LIMIT_PER_S + SLACK_S
        while client.llen(DONE_KEY) + store.count() < steps and time.monotonic() < deadline:
            time.sleep(1.0)
        ended_s = time.monotonic() - started
        stats = requests.get(f"{erp.url}/_sandbox/stats", timeout=10).json()
        gave_up = worker.log_text().count("no rate slot within")
    finally:
        worker.stop()
        erp.stop()
    done = [json.loads(raw) for raw in client.lrange(DONE_KEY, 0, -1)]
    letters = store.many(store.ids())
    by_category: dict[str, int] = {}
    for letter in letters:
        by_category[letter.category] = by_category.get(letter.category, 0) + 1
    return {"steps": steps, "done": len(done), "lost": steps - len(done) - len(letters),
            "ended_s": ended_s, "gave_up": gave_up,
            "attempts_spent": sum(r["retries"] for r in done)
            + sum(letter.attempts - 1 for letter in letters),
            "dead_letters": by_category, "peak": stats["peak_requests_per_s"]["received"],
            "refused": stats["faults_injected"].get("rate_limited", 0)}


def main(*, quick: bool = False) -> dict[str, Any]:
    handle = ensure_redis()
    url = with_db(handle.url, BENCH_DB)
    client = redis.Redis.from_url(url)
    steps = 100 if quick else 600
    try:
        r = run(client, url, steps)
    finally:
        client.flushdb()
        handle.stop()
    letters = ", ".join(f"{k} {v}" for k, v in sorted(r["dead_letters"].items())) or "none"
    print(f"\nWaiting: {steps} ERP steps, {THREADS} worker threads, a limit of "
          f"{LIMIT_PER_S}/s (enforced by the ERP simulator too), shipped retry policy")
    print("| steps done | neither done nor dead-lettered | ended after | acquires that gave up "
          "| attempts spent | dead letters | peak calls in any 1 s | refused by the ERP |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {r['done']} of {steps} | {r['lost']} | {r['ended_s']:.0f} s | {r['gave_up']} "
          f"| {r['attempts_spent']} | {letters} | {r['peak']} | {r['refused']} |")
    return r
