"""Flower on RabbitMQ: it starts with the fleet's settings, asks for credentials, and sees a
worker's task events (a chain step run on RabbitMQ)."""

from __future__ import annotations

import pytest
import requests

from o2c_workers.dev.fleet import Fleet
from o2c_workers.dev.redis_runtime import free_port
from tests.plugins.workers import ROOT, wait_for, worker_env

pytestmark = pytest.mark.slow

AUTH = ("ops", "flower-pass-rabbit")


def test_flower_runs_on_rabbitmq_and_shows_the_tasks(rabbit, tmp_path):
    rabbit.worker(queues="order")
    fleet = Fleet(worker_env(rabbit.redis_url, O2C_BROKER_URL=rabbit.url,
                             PYTHONPATH=str(ROOT)), log_dir=tmp_path)
    port = free_port()
    try:
        fleet.start_flower(port, auth=":".join(AUTH), db_path=tmp_path / "flower.db")
        url = f"http://127.0.0.1:{port}"
        assert requests.get(f"{url}/api/workers", timeout=10).status_code == 401
        rabbit.send("o2c.order.probe_step", {}, trace_key="0065g00000000W1AAA")

        def seen() -> bool:
            tasks = requests.get(f"{url}/api/tasks", auth=AUTH, timeout=10).json()
            return any(t.get("state") == "SUCCESS" and "0065g00000000W1AAA" in (
                t.get("args") or "") for t in tasks.values())
        wait_for(seen, timeout_s=30, interval_s=0.5, what="the task in Flower")
        assert "guest:guest" not in fleet.processes[0].log_text()
    finally:
        fleet.stop()
