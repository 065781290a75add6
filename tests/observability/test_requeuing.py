"""Dead letters left ``requeuing`` (a requeue to RabbitMQ that died after its claim) are
still in the queue: their transaction waits on them (not stalled, left by the sweeps), and
every count operators read names them apart from the open ones, so none is forgotten.
Real Redis; the entries are written as the claim writes them."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from config import get_settings, load_settings
from o2c_workers import app as celery_app
from o2c_workers import keys
from o2c_workers.cli import cli
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.receiver.app import Receiver
from o2c_workers.reconcile.explain import explain
from o2c_workers.reconcile.findings import Finding
from o2c_workers.report import build_report
from o2c_workers.stalls import open_dead_letters, stalled_transactions
from o2c_workers.status import transaction_status
from tests import soapmsg
from tests.dlq.conftest import worker_entry
from tests.helpers import call_wsgi
from tests.observability.conftest import samples
from tests.observability.test_stalls import STALL_AFTER_S, ago, chain_until

P = "o2c"
CLAIMED = "0065g00000CLAIMAAA"   # dead-lettered, then claimed by a requeue that died
HELD = "0065g00000HELD0AAA"      # dead-lettered, the entry open


@pytest.fixture
def claimed(redis_client: redis.Redis) -> redis.Redis:
    store = DeadLetterStore(redis_client, prefix=P, retention_s=3600)
    for trace_key in (CLAIMED, HELD):
        chain_until(redis_client, trace_key, last="priced", at=ago(1000))
    store.add(worker_entry(1, trace_key=CLAIMED, failed_at=ago(990), status="requeuing",
                           requeue_claim="cli:ops:0123456789", requeue_claimed_at=ago(900)))
    store.add(worker_entry(2, trace_key=HELD, failed_at=ago(990), category="exhausted"))
    return redis_client


def test_a_requeuing_entry_is_waited_on_not_stalled(claimed: redis.Redis) -> None:
    assert open_dead_letters(claimed, P, [CLAIMED, HELD]) == {CLAIMED: 1, HELD: 1}
    assert stalled_transactions(claimed, P, stall_after_s=STALL_AFTER_S) == []
    status = transaction_status(claimed, P, CLAIMED, stall_after_s=STALL_AFTER_S)
    assert status["stage"] == "dead_lettered" and status["stalled"] is False
    assert [d["status"] for d in status["dead_letters"]] == ["requeuing"]


def test_the_receivers_metrics_count_open_and_requeuing_apart(claimed: redis.Redis,
                                                              redis_url: str) -> None:
    settings = load_settings(redis_url=redis_url, webhook_token="t",
                             salesforce_org_ids=[soapmsg.ORG_ID])
    receiver = Receiver(settings, redis_client=claimed, celery_app=celery_app)
    status, _, body = call_wsgi(receiver, "GET", "/metrics")
    assert status == 200
    values = samples(body.decode())
    assert values[("o2c_dead_letters_open", ())] == 1.0
    assert values[("o2c_dead_letters_requeuing", ())] == 1.0
    assert values[("o2c_stalled_transactions", ())] == 0.0


def test_the_report_counts_them_by_category(claimed: redis.Redis) -> None:
    report = build_report(claimed, P)
    assert report.dead_letters_by_category == {"credit_hold": 1, "exhausted": 1}
    assert report.open_dead_letters_by_category == {"exhausted": 1}
    assert report.requeuing_dead_letters_by_category == {"credit_hold": 1}


@pytest.fixture
def run(redis_url: str) -> Any:
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        get_settings.cache_clear()
        try:
            return runner.invoke(cli, list(args), env={"O2C_REDIS_URL": redis_url,
                                                       "COLUMNS": "200"})
        finally:
            get_settings.cache_clear()

    return invoke


def test_the_commands_name_them(claimed: redis.Redis, run: Any) -> None:
    table = run("report").stdout
    assert "dead letters: credit_hold" in table and "0 open, 1 requeuing" in table
    stalled = run("report", "--stalled")
    assert "0 stalled" in stalled.stdout
    assert "1 dead letter(s) left requeuing" in stalled.stdout
    assert "--reclaim" in stalled.stdout
    data = json.loads(run("report", "--stalled", "--json").stdout)
    assert (data["count"], data["requeuing"]) == (0, 1)
    stats = run("dlq", "stats").stdout
    assert "requeuing: 1" in stats and "o2c dlq requeue --reclaim" in stats
    listed = json.loads(run("dlq", "list", "--json").stdout)
    assert (listed["total"], listed["requeuing"]) == (1, 1)


def test_reconcile_explains_a_disagreement_by_it_and_leaves_it_to_people(
        claimed: redis.Redis) -> None:
    # Out of flight too: nothing but the entry says anyone is on it.
    claimed.zrem(keys.transaction_index_active(P), CLAIMED)
    finding = Finding(kind="won_without_order", opportunity_id=CLAIMED, detail="no order",
                      repair="start_chain")
    [state] = explain(claimed, P, [finding], stall_after_s=STALL_AFTER_S).values()
    assert state.state == "dead_lettered"
    assert finding.explanation is not None
    assert finding.explanation.startswith("open dead letter: credit_hold (")
    assert finding.explanation.endswith(", requeuing)")
