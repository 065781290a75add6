"""A demo-sized run: the report, the timeline and the metrics agree with the simulators'
own record (ERP ``/_sandbox/stats`` and documents, Salesforce records)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import pytest
import requests

from o2c_workers import keys
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.report import build_report
from o2c_workers.stalls import stalled_transactions
from o2c_workers.status import transaction_status
from tests.observability.conftest import samples, total
from tests.plugins.workers import ROOT, wait_for

ADMIN = "report-admin-token"


@pytest.mark.slow
def test_report_timeline_and_metrics_agree_with_the_simulators(o2c_factory, tmp_path):
    metrics_port = free_port()
    o2c = o2c_factory(
        world_args={"accounts": 8, "opportunities": 20, "credit_hold": 1, "missing_tax": 1},
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "O2C_METRICS_PORT": str(metrics_port),
             "O2C_ADMIN_TOKEN": ADMIN, "O2C_ERP_RATE_LIMIT": "200/second"})
    expected = o2c.world.expected_failures
    ok = o2c.ok_opportunities()
    o2c.win()
    o2c.wait_written_back(ok)
    store = o2c.dead_letters()
    wait_for(lambda: len(store.ids()) >= len(expected), what="the designed dead letters")
    o2c.wait_settled()
    erp = o2c.erp_stats()
    worker_metrics = samples(requests.get(f"http://127.0.0.1:{metrics_port}/metrics",
                                          timeout=10).text)
    receiver_metrics = samples(requests.get(f"{o2c.receiver_url}/metrics", timeout=10).text)
    report = build_report(o2c.redis, "o2c")
    opportunities = o2c.sf_records("Opportunity")
    docs = erp["documents"]

    # The real writers keep the index of transactions in flight: every written-back
    # opportunity has left it; those still in it wait for people, so none is stalled, even
    # a day from now.
    in_flight = {m.decode() for m in o2c.redis.zrange(keys.transaction_index_active("o2c"),
                                                      0, -1)}
    assert in_flight == set(expected)
    assert stalled_transactions(o2c.redis, "o2c", stall_after_s=300,
                                now=time.time() + 86400) == []

    # The report against the simulators.
    won = len(o2c.world.opportunity_ids)
    assert report.counts["won"] == won == 20
    assert report.counts["booked"] == docs["Sales Order"] == len(ok)
    assert report.counts["written_back"] == sum(
        1 for o in opportunities.values() if o.get("ERP_Order_Number__c"))
    assert report.counts["invoiced"] == docs["Sales Invoice"] > 0
    assert report.counts["paid"] == sum(
        1 for o in opportunities.values() if o.get("Payment_Status__c") == "Paid")
    assert report.fallout == len(expected)
    assert report.fallout_rate == len(expected) / won
    assert report.touchless == len(ok)
    assert report.dead_letters_by_category == dict(Counter(expected.values()))
    assert report.won_to_booked.count == len(ok)
    assert 0 < report.won_to_booked.p50_s <= report.won_to_booked.p95_s < 60
    assert report.booked_to_invoiced.count == report.counts["invoiced"]

    # The same numbers from the metrics (every worker process of the host, one port).
    assert total(worker_metrics, "o2c_tasks_total", outcome="retried") == report.retries
    assert total(worker_metrics, "o2c_dead_letters_total") == len(expected)
    assert total(worker_metrics, "o2c_won_to_booked_seconds_count") == len(ok)
    assert total(worker_metrics, "o2c_booked_to_invoiced_seconds_count") == \
        report.counts["invoiced"]
    by_status = {status: total(worker_metrics, "o2c_erp_requests_total", status=status)
                 for status in erp["calls"]["by_status"]}
    assert by_status == {k: float(v) for k, v in erp["calls"]["by_status"].items()}
    assert total(worker_metrics, "o2c_erp_requests_total") == erp["calls"]["total"]
    assert total(worker_metrics, "o2c_limiter_acquires_total", limiter="erp") == \
        erp["calls"]["total"]
    assert total(worker_metrics, "o2c_erp_request_duration_seconds_count") == \
        erp["calls"]["total"]
    assert total(worker_metrics, "o2c_salesforce_requests_total") > 0
    assert total(worker_metrics, "o2c_tasks_total", task="o2c.order.submit_order",
                 outcome="succeeded") >= len(ok)
    assert total(receiver_metrics, "o2c_notifications_enqueued_total",
                 source="salesforce") == won
    assert total(receiver_metrics, "o2c_notifications_enqueued_total", source="erp") > 0

    # One transaction's story over HTTP, as `o2c status` tells it.
    failed = next(iter(expected))
    path = f"{o2c.receiver_url}/transactions/{failed}"
    assert requests.get(path, timeout=10).status_code == 401
    story = requests.get(path, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).json()
    assert story["stage"] == "dead_lettered"
    assert [d["category"] for d in story["dead_letters"]] == [expected[failed]]
    booked = next(o for o in ok if "invoiced" in transaction_status(
        o2c.redis, "o2c", o, stall_after_s=300)["milestones"])
    story = requests.get(f"{o2c.receiver_url}/transactions/{booked}",
                         headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).json()
    assert story == json.loads(json.dumps(transaction_status(o2c.redis, "o2c", booked,
                                                             stall_after_s=300)))
    assert (story["stalled"], story["last_progress_at"]) == (False, story["timeline"][-1]["ts"])
    assert {"won", "booked", "written_back", "invoiced"} <= set(story["milestones"])
    domains = {e["task"].split(".")[1] for e in story["timeline"] if "task" in e}
    assert {"customer", "pricing", "order", "invoice"} <= domains
    assert requests.get(f"{o2c.receiver_url}/transactions/0065g0000000zzzAAA",
                        headers={"Authorization": f"Bearer {ADMIN}"},
                        timeout=10).status_code == 404

    # The command prints the same report.
    command = [sys.executable, "-c", "from o2c_workers.cli import main; main()", "report",
               "--json"]
    printed = subprocess.run(command, cwd=ROOT, env=o2c.fleet.env, capture_output=True,
                             text=True, check=True, timeout=30)
    data = json.loads(printed.stdout)
    assert data["counts"] == report.counts
    assert data["fallout_rate"] == report.fallout_rate
    assert data["dead_letters_by_category"] == report.dead_letters_by_category
