"""Dead-letter listing at 100,000 entries: our indexes against a full scan, in one run.

The store is filled with pipelined ``add_ops`` (entries spread over 30 days, 7 categories,
6 domains, ~3 entries per trace key, a fifth of them resolved). Each query asks for the first
page (50) of open entries and the total; the naive side SCANs every entry hash, HGETALLs it
and filters in Python, as a first version would. Both answers are checked to be the same.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis

from o2c_workers.dev.redis_runtime import ensure_redis, with_db
from o2c_workers.dlq import DeadLetter, DeadLetterStore, Status
from o2c_workers.dlq.query import Filter
from o2c_workers.dlq.store import _decode

BENCH_DB = int(os.environ.get("BENCH_DLQ_DB", "13"))
#: A prefix of the benchmark's own; only its keys are written and removed.
PREFIX = "benchdlq"
CATEGORIES = ("credit_hold", "tax_config", "price_mismatch", "exhausted", "invalid_payload",
              "unrouted", "auth")
DOMAINS = ("customer", "pricing", "order", "invoice", "payment", "receiver")
PAGE = 50


def fill(store: DeadLetterStore, count: int, *, now: float, seed: int = 7) -> list[DeadLetter]:
    rng = random.Random(seed)
    entries = []
    pipe = store.client.pipeline(transaction=False)
    for n in range(count):
        at = now - rng.uniform(0, 30 * 86400)
        status = Status.RESOLVED if rng.random() < 0.2 else Status.OPEN
        entry = DeadLetter(
            id=f"{int(at * 1000):013d}-{n:010x}", trace_key=f"006bench{n // 3:010d}",
            domain=rng.choice(DOMAINS), category=rng.choice(CATEGORIES),
            task="o2c.pricing.validate_order", args=[{"n": n}], payload={"n": n},
            error_class="BusinessError", message="benchmark entry", status=status,
            first_failed_at=at, last_failed_at=at, traceback="Traceback ...")
        for op in store.add_ops(entry):
            pipe.execute_command(*op)
        if n % 1000 == 999:
            pipe.execute()
        entries.append(entry)
    pipe.execute()
    return entries


def naive(client: redis.Redis, match: Callable[[DeadLetter], bool]) -> tuple[list[str], int]:
    """Every entry hash read and filtered in Python; first page by last failure, and total."""
    found: list[tuple[float, str]] = []
    batch: list[bytes] = []

    def flush() -> None:
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.hgetall(key)
        for raw in pipe.execute():
            if raw:
                entry = _decode(raw)
                if match(entry):
                    found.append((entry.last_failed_at, entry.id))
        batch.clear()

    for key in client.scan_iter(match=f"{PREFIX}:dlq:entry:*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            flush()
    flush()
    found.sort()
    return [entry_id for _, entry_id in found[:PAGE]], len(found)


def matcher(f: Filter) -> Callable[[DeadLetter], bool]:
    def match(e: DeadLetter) -> bool:
        return ((f.status is None or e.status is f.status)
                and (f.category is None or e.category == f.category)
                and (f.domain is None or e.domain == f.domain)
                and (f.trace_key is None or e.trace_key == f.trace_key)
                and (f.since is None or e.last_failed_at >= f.since))
    return match


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time in ms over ``repeat`` runs, and the last answer."""
    times, answer = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        answer = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), answer


def cleanup(client: redis.Redis) -> None:
    batch = []
    for key in client.scan_iter(match=f"{PREFIX}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


def main(*, quick: bool = False) -> list[dict[str, object]]:
    count = 10_000 if quick else 100_000
    handle = ensure_redis()
    client = redis.Redis.from_url(with_db(handle.url, BENCH_DB))
    store = DeadLetterStore(client, prefix=PREFIX, retention_s=30 * 86400)
    now = time.time()
    rows = []
    try:
        cleanup(client)
        started = time.perf_counter()
        entries = fill(store, count, now=now)
        fill_s = time.perf_counter() - started
        trace = entries[count // 2].trace_key
        queries = {
            "category": Filter(category="credit_hold"),
            "domain": Filter(domain="invoice"),
            "trace key": Filter(trace_key=trace, status=None),
            "since 2h": Filter(since=now - 7200),
            "category + domain + since 3d": Filter(category="auth", domain="order",
                                                   since=now - 3 * 86400),
        }
        for name, f in queries.items():
            ours_ms, page = timed(lambda f=f: store.query(f, limit=PAGE), 1 if quick else 20)
            naive_ms, (ids, total) = timed(lambda f=f: naive(client, matcher(f)), 1)
            assert (page.ids, page.total) == (ids, total), f"answers differ for {name}"
            rows.append({"query": name, "total": total, "ours_ms": ours_ms,
                         "naive_ms": naive_ms, "ratio": naive_ms / ours_ms})
    finally:
        cleanup(client)
        client.close()
        handle.stop()
    print(f"\nDead-letter listing: {count:,} entries (filled in {fill_s:.1f} s with pipelined "
          f"add_ops), first page of {PAGE} plus the total; ours the median of "
          f"{1 if quick else 20} runs, the full scan 1 run")
    print("| query | matches | ours ms | full scan ms | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['query']} | {r['total']:,} | {r['ours_ms']:.2f} | {r['naive_ms']:,.0f} "
              f"| {r['ratio']:,.0f}x |")
    return rows
