"""``/metrics`` parses with prometheus-client's parser and its counters move with the work:
the receiver in-process and under gunicorn (multiprocess mode), and a worker's port."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
import requests

from config import load_settings
from o2c_workers import app as celery_app
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.dev.fleet import Fleet
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.enqueue import MessageFactory
from o2c_workers.receiver.app import Receiver
from tests import soapmsg
from tests.helpers import call_wsgi
from tests.observability.conftest import samples, total
from tests.plugins.workers import ROOT, start_worker, wait_for
from tests.probe_tasks import PROBE_KEY

TOKEN = "metrics-webhook-token"
CHAIN = ("o2c.customer.probe_step", "o2c.pricing.probe_step", "o2c.order.probe_step")


def scrape(app) -> dict:
    status, headers, body = call_wsgi(app, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    return samples(body.decode())


def post(app, body: bytes, token: str = TOKEN) -> int:
    return call_wsgi(app, "POST", "/salesforce/outbound", body, query=f"token={token}")[0]


def test_receiver_counts_received_deduped_and_rejected(redis_url, redis_client):
    settings = load_settings(redis_url=redis_url, webhook_token=TOKEN,
                             salesforce_org_ids=[soapmsg.ORG_ID])
    app = Receiver(settings, redis_client=redis_client, celery_app=celery_app)
    before = scrape(app)
    assert post(app, soapmsg.won_message([1, 2])) == 200
    assert post(app, soapmsg.won_message([1, 2])) == 200  # Salesforce resends
    assert post(app, soapmsg.won_message([3]), token="wrong") == 401
    assert post(app, b"<not-xml") == 400
    after = scrape(app)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("o2c_notifications_received_total", source="salesforce") == 4
    assert moved("o2c_notifications_enqueued_total", source="salesforce") == 2
    assert moved("o2c_notifications_deduped_total", source="salesforce") == 2
    assert moved("o2c_notifications_rejected_total", reason="unauthorized") == 1
    assert moved("o2c_notifications_rejected_total", reason="bad_request") == 1


def children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                         check=False).stdout
    return {int(p) for p in out.split()}


@pytest.mark.slow
def test_receiver_under_gunicorn_sums_every_worker_process(redis_url, redis_client, tmp_path):
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = {**os.environ, "O2C_REDIS_URL": redis_url, "O2C_WEBHOOK_TOKEN": TOKEN,
           "O2C_SALESFORCE_ORG_IDS": soapmsg.ORG_ID, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
           "PYTHONPATH": str(ROOT)}
    fleet = Fleet(env=env, log_dir=tmp_path / "logs")
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def deliver(indexes: range) -> None:
        for index in indexes:
            answer = requests.post(f"{url}/salesforce/outbound", params={"token": TOKEN},
                                   data=soapmsg.won_message([index]), timeout=10,
                                   headers={"Content-Type": "text/xml; charset=UTF-8"})
            assert answer.status_code == 200

    try:
        master = fleet.start_receiver(port, workers=2)
        deliver(range(1, 5))
        old = children(master.pid)
        # A reload replaces every worker process: the new ones never saw the first four.
        master.process.send_signal(signal.SIGHUP)
        wait_for(lambda: len(children(master.pid) - old) == 2 and not children(master.pid) & old,
                 timeout_s=20, what="gunicorn to replace its workers")
        deliver(range(5, 9))
        for _ in range(4):
            values = samples(requests.get(f"{url}/metrics", timeout=10).text)
            assert total(values, "o2c_notifications_enqueued_total", source="salesforce") == 8
            assert total(values, "o2c_notifications_received_total") == 8
    finally:
        fleet.stop()
    assert len(list(metrics_dir.glob("counter_*.db"))) >= 2


def enqueue(client, payload, trace_key):
    msg = MessageFactory(celery_app).build(CHAIN[0], args=[payload], trace_key=trace_key,
                                           then=CHAIN[1:])
    assert AtomicWriter(client).run([Item(["always"], [msg.push_op()])]) == [True]


@pytest.mark.slow
def test_worker_serves_its_metrics_on_its_port(redis_url, redis_client, workers, tmp_path):
    port = free_port()
    workers.append(start_worker(redis_url, include="tests.probe_tasks", env={
        "O2C_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}))
    enqueue(redis_client, {"fail": {"pricing": 1}}, "0065g00000000M1AAA")
    enqueue(redis_client, {"fail": {"pricing": "business"}}, "0065g00000000M2AAA")

    def finished() -> bool:
        calls = [json.loads(raw) for raw in redis_client.lrange(PROBE_KEY, 0, -1)]
        return [c["task"] for c in calls].count(CHAIN[2]) == 1 and len(calls) == 6

    wait_for(finished, what="both chains to finish")
    url = f"http://127.0.0.1:{port}/metrics"

    def scraped() -> dict | None:
        # Each pool process counts a step at its postrun, after the probe has recorded the
        # call: wait until every run of the order and pricing steps is counted.
        values = samples(requests.get(url, timeout=5).text)
        counted = (total(values, "o2c_tasks_total", task=CHAIN[2]),
                   total(values, "o2c_tasks_total", task=CHAIN[1]))
        return values if counted == (1, 3) else None

    values = wait_for(scraped, timeout_s=10, what="every step's run in the metrics")
    assert total(values, "o2c_tasks_total", task=CHAIN[0], outcome="succeeded") == 2
    assert total(values, "o2c_tasks_total", task=CHAIN[1], outcome="retried") == 1
    assert total(values, "o2c_tasks_total", task=CHAIN[1], outcome="succeeded") == 1
    assert total(values, "o2c_tasks_total", task=CHAIN[1], outcome="dead_lettered") == 1
    assert total(values, "o2c_dead_letters_total", domain="pricing",
                 category="credit_hold") == 1
    assert total(values, "o2c_task_duration_seconds_count", domain="pricing") == 3
    # The retry is counted on the transaction too, for the report.
    assert redis_client.hget("o2c:txn:0065g00000000M1AAA", "retries") == b"1"
