"""The demo run: sandbox, receiver, workers and Flower up; opportunities won; watch; report."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import requests
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from config import load_settings
from o2c_workers.demo.progress import STAGES, Snapshot, snapshot
from o2c_workers.dev.fleet import Fleet
from o2c_workers.dev.redis_runtime import RedisHandle, ensure_redis, free_port, with_db
from o2c_workers.errors import O2CError
from o2c_workers.reconcile import Reconciler, Report
from o2c_workers.sandbox import Sandbox, start_sandbox
from o2c_workers.sandbox.erp import ErpConfig
from o2c_workers.sandbox.salesforce import SalesforceConfig
from o2c_workers.sandbox.world import generate_world
from o2c_workers.writeback import Outbox

LABELS = {"won": "won in Salesforce", "booked": "booked in the ERP",
          "written_back": "written back", "invoiced": "invoiced", "paid": "paid in full"}


@dataclass(frozen=True)
class DemoOptions:
    opportunities: int = 200
    accounts: int = 50
    seed: int = 7
    credit_hold: int = 2
    missing_tax: int = 2
    unknown_item: int = 2
    workers_per_queue: int = 2
    timeout_s: float = 300.0
    keep_running: bool = False
    redis_db: int = 11
    run_dir: Path = Path(".o2c/demo")


@dataclass
class Running:
    """Everything one demo run started, for a clean stop."""

    redis: RedisHandle
    sandbox: Sandbox
    fleet: Fleet
    env: dict[str, str]
    receiver_url: str
    flower_url: str
    flower_auth: str
    keep_running: bool = False


@contextmanager
def running(opts: DemoOptions, console: Console) -> Iterator[Running]:
    handle = ensure_redis()
    url = with_db(handle.url, opts.redis_db)
    redis.Redis.from_url(url).flushdb()
    receiver_port, flower_port = free_port(), free_port()
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    token, admin = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    world = generate_world(seed=opts.seed, accounts=opts.accounts,
                           opportunities=opts.opportunities, credit_hold=opts.credit_hold,
                           missing_tax=opts.missing_tax, unknown_item=opts.unknown_item)
    sandbox = start_sandbox(
        world=world, erp_port=0, sf_port=0,
        erp_config=ErpConfig(webhook_url=f"{receiver_url}/erp/events", invoice_delay_s=1.0,
                             payment_delay_s=1.0, seed=opts.seed),
        # Salesforce delivers at least once: some notifications arrive twice.
        sf_config=SalesforceConfig(org_id=world.org_id, seed=opts.seed, duplicate_rate=0.05,
                                   outbound_url=f"{receiver_url}/salesforce/outbound"
                                                f"?token={token}"))
    flower_auth = f"ops:{secrets.token_urlsafe(12)}"
    # The demo's Redis is its broker too: a caller's O2C_BROKER_URL is not passed on.
    caller = {k: v for k, v in os.environ.items() if k != "O2C_BROKER_URL"}
    env = {**caller, **sandbox.env(), "O2C_REDIS_URL": url, "O2C_WEBHOOK_TOKEN": token,
           "O2C_ADMIN_TOKEN": admin, "O2C_LOG_JSON": "true", "O2C_RETRY_BASE_S": "1",
           "O2C_RETRY_CAP_S": "20"}
    run_dir = opts.run_dir / time.strftime("%Y%m%d-%H%M%S")
    fleet = Fleet(env=env, log_dir=run_dir / "logs")
    try:
        console.print(f"[dim]logs in {run_dir / 'logs'}[/]")
        fleet.start_receiver(receiver_port)
        for worker in fleet.start_workers(concurrency=opts.workers_per_queue):
            worker.wait_ready()
        fleet.start_flower(flower_port, auth=flower_auth, db_path=run_dir / "flower.db")
        yield Running(handle, sandbox, fleet, env, receiver_url,
                      f"http://127.0.0.1:{flower_port}", flower_auth, opts.keep_running)
    finally:
        fleet.stop()
        sandbox.stop()
        handle.stop()


def settled(snap: Snapshot, total: int, erp_stats: dict[str, Any], *,
            outbox: int = 0) -> bool:
    """Every opportunity booked or dead-lettered, every booked one invoiced, nothing queued,
    no status write-back waiting in the outbox, and the ERP has no invoice, payment or
    webhook still to come."""
    webhooks = erp_stats.get("webhooks") or {}
    lifecycle = erp_stats.get("lifecycle") or {}
    pending = int(webhooks.get("pending", 0)) + int(lifecycle.get("scheduled", 0))
    counts = snap.counts
    return (counts["won"] >= total
            and counts["written_back"] + snap.report.fallout >= total
            and counts["invoiced"] >= counts["written_back"]
            and snap.queued == 0 and pending == 0 and outbox == 0)


def watch(run: Running, opts: DemoOptions, console: Console) -> Snapshot:
    client = redis.Redis.from_url(run.env["O2C_REDIS_URL"])
    total = opts.opportunities
    expected_ok = total - len(run.sandbox.world.expected_failures)
    deadline = time.monotonic() + opts.timeout_s
    quiet_since, last = time.monotonic(), None
    with Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bars:
        ids = {stage: bars.add_task(LABELS[stage], total=total if stage == "won" else
                                    expected_ok) for stage in STAGES}
        dead = bars.add_task("dead letters", total=len(run.sandbox.world.expected_failures))
        while time.monotonic() < deadline:
            snap = snapshot(client, "o2c")
            for stage in STAGES:
                bars.update(ids[stage], completed=snap.counts[stage])
            dead_letters = sum(snap.open_dead_letters.values())
            bars.update(dead, completed=dead_letters)
            state = (tuple(snap.counts.values()), dead_letters, snap.queued)
            if state != last:
                quiet_since, last = time.monotonic(), state
            erp = requests.get(f"{run.sandbox.erp_url}/_sandbox/stats", timeout=5).json()
            waiting = Outbox(client, prefix="o2c", flush_s=0).waiting()
            if settled(snap, total, erp, outbox=waiting) and \
                    time.monotonic() - quiet_since > 3.0:
                return snap
            time.sleep(0.5)
    console.print(f"[yellow]stopped watching after {opts.timeout_s:.0f}s[/]")
    return snapshot(client, "o2c")


def reconcile(run: Running, *, since: float) -> Report | str:
    """``o2c reconcile`` over the run (the fleet's settings); what stopped it, if it failed."""
    settings = load_settings(**{k.removeprefix("O2C_").lower(): v for k, v in run.env.items()
                                if k.startswith("O2C_")})
    client = redis.Redis.from_url(settings.redis_url)
    reconciler = Reconciler.build(settings, redis_client=client)
    try:
        return reconciler.run(since)
    except (O2CError, redis.RedisError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        reconciler.close()
        client.close()
