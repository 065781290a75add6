"""The run's last act: the faults off, every open dead letter requeued with the ``o2c``
command as an operator would (``o2c dlq requeue --all``), and a bounded wait until each
requeued entry is resolved or failed again."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from o2c_workers.demo.chaos.churn_judge import filed_at
from o2c_workers.demo.chaos.observe import dead_letters

#: The ERP's faults, all off (``POST /_sandbox/faults``).
FAULTS_OFF = {"error_rate": 0.0, "timeout_after_commit_rate": 0.0, "rate_limit_per_s": None,
              "latency_ms": 0.0, "latency_jitter_ms": 0.0, "maintenance_for_s": 0}
#: How often the replay's dead letters are read, seconds.
POLL_S = 2.0


@dataclass(frozen=True)
class Replay:
    requeued: list[dict[str, Any]]
    refused: int
    #: Seconds until every requeued entry settled; None when the wait gave up.
    settled_in_s: float | None
    resolved: int
    failed_again: int


def faults_off(erp_url: str) -> None:
    requests.post(f"{erp_url}/_sandbox/faults", json=FAULTS_OFF, timeout=10).raise_for_status()


def requeue_all(env: dict[str, str]) -> dict[str, Any]:
    """``o2c dlq requeue --all --json`` with the fleet's environment."""
    done = subprocess.run([sys.executable, "-m", "o2c_workers.cli", "dlq", "requeue", "--all",
                           "--json"], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"o2c dlq requeue --all failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def outcome(entry: dict[str, Any], letters: list[dict[str, Any]], since: float) -> str | None:
    """``resolved``, ``failed_again`` (a newer entry of its step and trace key), or None
    while it is still on its way."""
    if entry["status"] == "resolved":
        return "resolved"
    again = any(e["trace_key"] == entry["trace_key"] and e["task"] == entry["task"]
                and e["id"] != entry["id"] and filed_at(e) >= since for e in letters)
    return "failed_again" if again else None


def replay(env: dict[str, str], erp_url: str, *, wait_s: float,
           done: Callable[[], bool]) -> Replay:
    """Faults off, requeue everything open, then wait (at most ``wait_s``) until each
    requeued entry settled and ``done()`` holds."""
    faults_off(erp_url)
    since = time.time()
    report = requeue_all(env)
    ids = {row["id"] for row in report.get("done", [])}
    deadline, started = time.monotonic() + wait_s, time.monotonic()
    settled: dict[str, str | None] = {}
    while True:
        letters = dead_letters(env) or []
        ours = [e for e in letters if e["id"] in ids]
        settled = {e["id"]: outcome(e, letters, since) for e in ours}
        if all(settled.values()) and len(settled) == len(ids) and done():
            elapsed: float | None = round(time.monotonic() - started, 1)
            break
        if time.monotonic() > deadline:
            elapsed = None
            break
        time.sleep(POLL_S)
    values = list(settled.values())
    return Replay(list(report.get("done", [])), int(report.get("refused_count", 0)), elapsed,
                  values.count("resolved"), values.count("failed_again"))
