"""Ingest on both brokers: our receiver enqueuing to Redis against the same receiver
publishing to RabbitMQ (publisher confirms, then the marks on Redis), side by side in one
run on the same Redis, alternating rounds.

``python -m tests.bench ingest_brokers [--quick]``. RabbitMQ is the machine's node
(``O2C_TEST_AMQP_URL``, default ``amqp://guest:guest@127.0.0.1:5672``), on a vhost made for
the run and deleted after; the queues are purged between rounds (no worker consumes).
"""

from __future__ import annotations

import os
from typing import Any

import redis
from kombu.connection import Connection

from o2c_workers.amqp import topology
from o2c_workers.dev.redis_runtime import ensure_redis, with_db
from tests.bench import ingest
from tests.rabbitmq import NoRabbitMQ, virtual_host

#: The Redis database of this benchmark (the ingest benchmark's own).
BENCH_DB = ingest.BENCH_DB


def purge(url: str) -> None:
    with Connection(url) as conn:  # type: ignore[no-untyped-call]
        channel = conn.channel()
        for queue in topology.task_queues():
            bound = queue.bind(channel)  # type: ignore[no-untyped-call]
            bound.declare()
            bound.purge()


def main(*, quick: bool = False) -> list[dict[str, Any]]:
    handle = ensure_redis()
    url = with_db(handle.url, BENCH_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    duration = 1.5 if quick else 3.0
    rounds = 2 if quick else 6
    workers = int(os.environ.get("BENCH_GUNICORN_WORKERS", "2").split(",")[-1])
    rows: list[dict[str, Any]] = []
    try:
        with virtual_host(prefix="o2c-bench") as vhost:
            on_redis = ingest.start_gunicorn("on Redis", "o2c_workers.wsgi:create_app()",
                                             url, workers=workers)
            on_amqp = ingest.start_gunicorn("on RabbitMQ", "o2c_workers.wsgi:create_app()",
                                            url, workers=workers,
                                            env={"O2C_BROKER_URL": vhost.url})
            try:
                for size in (1, 100):
                    purge(vhost.url)
                    row = ingest.compare(on_redis, on_amqp, client, size=size, connections=8,
                                         rounds=rounds, duration_s=duration,
                                         between=lambda: purge(vhost.url))
                    rows.append({"workers": workers, **row})
            finally:
                on_redis.stop()
                on_amqp.stop()
    except NoRabbitMQ as exc:
        print(f"\nIngest on both brokers: skipped, {exc}")
        return rows
    finally:
        client.flushdb()
        handle.stop()
    print(f"\nIngest on both brokers: our receiver under gunicorn ({workers} workers, "
          f"config/gunicorn.py), the same Redis for the state, {rounds} alternating round(s) "
          f"of {duration:.1f} s per side; best round of each side, and the median ratio of "
          "rounds run back to back (RabbitMQ / Redis)")
    print("| notifications/message | on Redis notif/s | on RabbitMQ notif/s "
          "| RabbitMQ / Redis (best) | (median of paired rounds) | Redis p50 / p99 ms "
          "| RabbitMQ p50 / p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['notifications_per_message']} | {r['ours_nps']:,.0f} "
              f"| {r['base_nps']:,.0f} | {1 / r['ratio'] if r['ratio'] else 0:.2f}x "
              f"| {1 / r['paired_median']:.2f}x "
              f"| {r['ours_p50']:.1f} / {r['ours_p99']:.1f} "
              f"| {r['base_p50']:.1f} / {r['base_p99']:.1f} | {r['errors']} |")
    return rows
