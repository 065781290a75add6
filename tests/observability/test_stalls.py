"""Stalled transactions: listed by ``stalled_transactions`` and ``o2c report --stalled``,
marked by ``o2c status``, counted by the receiver's ``/metrics``. Real Redis, the shipped
``O2C_STALL_AFTER_S`` (300 s): the timelines are written with old timestamps."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from config import get_settings, load_settings
from o2c_workers import app as celery_app
from o2c_workers import keys, timeline
from o2c_workers.cli import cli
from o2c_workers.dlq import DeadLetterStore, ops
from o2c_workers.receiver.app import Receiver
from o2c_workers.receiver.replan import build_dlq
from o2c_workers.runtime import connect
from o2c_workers.stalls import stalled_transactions
from tests import soapmsg
from tests.dlq.conftest import worker_entry
from tests.helpers import call_wsgi
from tests.observability.conftest import samples

P = "o2c"
STALL_AFTER_S = load_settings().stall_after_s
TOKEN = "stall-webhook-token"
#: One transaction of each shape; each test writes the ones it needs.
STUCK = "0065g00000STUCKAAA"        # received, priced 15 minutes ago, nothing since
DONE = "0065g00000DONE0AAA"         # written back 10 minutes ago
WAITING = "0065g00000WAIT0AAA"      # dead-lettered 15 minutes ago, the entry open
RECENT = "0065g00000RECNTAAA"       # moved 4 minutes ago: under the threshold
ACCOUNT_STUCK = "0015g00000ACSTKAAA"
ACCOUNT_SYNCED = "0015g00000ACSYNAAA"
ERP_ONLY = "erp:Sales Invoice:SINV-0001"


def ago(seconds: float) -> float:
    return time.time() - seconds


def record(client: redis.Redis, trace_key: str, event: str, at: float, **details: Any) -> None:
    timeline.record(client, P, trace_key, event, at=at, **details)


def chain_until(client: redis.Redis, trace_key: str, *, last: str, at: float) -> None:
    """The opportunity chain's own records, up to and including ``last``, ending at ``at``."""
    steps: list[tuple[str, dict[str, Any]]] = [
        ("received", {"notification_id": "04l5g0000000001AAA"}),
        ("won", {"milestone": "won", "task": "o2c.customer.ensure_customer"}),
        ("customer_synced", {"task": "o2c.customer.ensure_customer"}),
        ("priced", {"task": "o2c.pricing.validate_order"}),
        ("order_submitted", {"milestone": "booked", "task": "o2c.order.submit_order"}),
        ("written_back", {"milestone": "written_back", "task": "o2c.order.write_back"}),
    ]
    names = [name for name, _ in steps]
    todo = steps[:names.index(last) + 1]
    for n, (event, details) in enumerate(todo):
        record(client, trace_key, event, at - 10 * (len(todo) - 1 - n), **details)


def dead_letter(client: redis.Redis, trace_key: str, at: float) -> str:
    """What the base task does: file the entry, then record it on the timeline."""
    store = DeadLetterStore(client, prefix=P, retention_s=3600)
    entry = store.add(worker_entry(trace_key=trace_key, failed_at=at))
    record(client, trace_key, "dead_lettered", at, task=entry.task, dead_letter=entry.id,
           category=entry.category)
    return entry.id


@pytest.fixture
def world(redis_client: redis.Redis) -> redis.Redis:
    chain_until(redis_client, STUCK, last="priced", at=ago(900))
    chain_until(redis_client, DONE, last="written_back", at=ago(600))
    chain_until(redis_client, WAITING, last="priced", at=ago(1000))
    dead_letter(redis_client, WAITING, ago(900))
    chain_until(redis_client, RECENT, last="priced", at=ago(240))
    record(redis_client, ACCOUNT_STUCK, "received", ago(1200))
    record(redis_client, ACCOUNT_SYNCED, "received", ago(1200))
    record(redis_client, ACCOUNT_SYNCED, "customer_synced", ago(1190),
           milestone=timeline.SYNCED, task="o2c.customer.sync_account")
    record(redis_client, ERP_ONLY, "erp_event", ago(3600), doctype="Sales Invoice")
    return redis_client


def test_the_shipped_threshold_is_five_minutes() -> None:
    assert STALL_AFTER_S == 300


def test_stalled_are_in_flight_quiet_and_waiting_for_no_one(world: redis.Redis) -> None:
    stalls = stalled_transactions(world, P, stall_after_s=STALL_AFTER_S)
    # Longest stalled first; the written back, the dead-lettered, the recent, the synced
    # account and the ERP document no chain of ours started are not stalled.
    assert [s.trace_key for s in stalls] == [ACCOUNT_STUCK, STUCK]
    account, stuck = stalls
    assert (account.last_event["event"], stuck.last_event["event"]) == ("received", "priced")
    assert stuck.last_event["task"] == "o2c.pricing.validate_order"
    assert stuck.last_progress_at == pytest.approx(ago(900), abs=2)
    assert stuck.stalled_for_s == pytest.approx(900, abs=2)
    assert [s.trace_key for s in stalled_transactions(world, P, stall_after_s=STALL_AFTER_S,
                                                      limit=1)] == [ACCOUNT_STUCK]
    # Only transactions in flight are indexed: done ones have left it.
    active = {m.decode() for m in world.zrange(keys.transaction_index_active(P), 0, -1)}
    assert active == {STUCK, WAITING, RECENT, ACCOUNT_STUCK}


def test_the_threshold_is_the_time_since_the_newest_event(redis_client: redis.Redis) -> None:
    chain_until(redis_client, STUCK, last="customer_synced", at=ago(STALL_AFTER_S + 5))
    chain_until(redis_client, RECENT, last="customer_synced", at=ago(STALL_AFTER_S - 5))
    assert [s.trace_key for s in stalled_transactions(redis_client, P,
                                                      stall_after_s=STALL_AFTER_S)] == [STUCK]
    # Any event is progress, milestone or not; an older one written late never moves the
    # last progress back.
    record(redis_client, STUCK, "priced", ago(1), task="o2c.pricing.validate_order")
    record(redis_client, STUCK, "order_status", ago(3600), status="To Deliver and Bill")
    assert stalled_transactions(redis_client, P, stall_after_s=STALL_AFTER_S) == []
    score = redis_client.zscore(keys.transaction_index_active(P), STUCK)
    assert score == pytest.approx(ago(1), abs=2)


def test_requeue_resolve_and_purge(redis_client: redis.Redis, redis_url: str) -> None:
    dlq = build_dlq(load_settings(redis_url=redis_url), client=redis_client,
                                actor="test")
    chain_until(redis_client, WAITING, last="priced", at=ago(1000))
    first = dead_letter(redis_client, WAITING, ago(990))
    second = dead_letter(redis_client, WAITING, ago(980))
    assert stalled_transactions(redis_client, P, stall_after_s=STALL_AFTER_S) == []
    # One of two purged: the other still waits for people.
    ops.purge_one(dlq, first, reason="duplicate of the other")
    assert stalled_transactions(redis_client, P, stall_after_s=STALL_AFTER_S) == []
    assert redis_client.zscore(keys.transaction_index_active(P), WAITING) is not None
    # The last open one purged: people closed the transaction, it is out of flight.
    ops.purge_one(dlq, second)
    assert redis_client.zscore(keys.transaction_index_active(P), WAITING) is None
    assert timeline.read(redis_client, P, WAITING)[-1]["event"] == "dead_letter_purged"
    assert stalled_transactions(redis_client, P, stall_after_s=STALL_AFTER_S) == []

    # A requeued step that then goes quiet is stalled again once the threshold passes.
    chain_until(redis_client, STUCK, last="priced", at=ago(2000))
    entry = dead_letter(redis_client, STUCK, ago(1990))
    ops.requeue_one(dlq, entry, now=ago(STALL_AFTER_S + 60))
    [stall] = stalled_transactions(redis_client, P, stall_after_s=STALL_AFTER_S)
    assert (stall.trace_key, stall.last_event["event"]) == (STUCK, "requeued")


def test_the_receiver_opens_a_transaction(redis_client: redis.Redis, redis_url: str) -> None:
    settings = load_settings(redis_url=redis_url, webhook_token=TOKEN,
                             salesforce_org_ids=[soapmsg.ORG_ID])
    receiver = Receiver(settings, redis_client=redis_client, celery_app=celery_app)
    status, _, _ = call_wsgi(receiver, "POST", "/salesforce/outbound",
                             soapmsg.won_message([1]), query=f"token={TOKEN}")
    assert status == 200
    [(member, score)] = redis_client.zrange(keys.transaction_index_active(P), 0, -1,
                                            withscores=True)
    assert score == pytest.approx(time.time(), abs=5)
    trace_key = member.decode()
    assert timeline.read(redis_client, P, trace_key)[-1]["event"] == "received"
    assert stalled_transactions(redis_client, P, stall_after_s=STALL_AFTER_S) == []
    assert [s.trace_key for s in stalled_transactions(
        redis_client, P, stall_after_s=STALL_AFTER_S, now=time.time() + 301)] == [trace_key]


# --- the gauge -----------------------------------------------------------------------------


GAUGE = ("o2c_stalled_transactions", ())


def scrape(receiver: Receiver) -> dict[Any, float]:
    status, _, body = call_wsgi(receiver, "GET", "/metrics")
    assert status == 200
    return samples(body.decode())


def test_the_receivers_metrics_count_them_on_each_scrape(world: redis.Redis,
                                                         redis_url: str) -> None:
    settings = load_settings(redis_url=redis_url, webhook_token=TOKEN,
                             salesforce_org_ids=[soapmsg.ORG_ID])
    receiver = Receiver(settings, redis_client=world, celery_app=celery_app)
    assert scrape(receiver)[GAUGE] == 2.0
    record(world, STUCK, "order_submitted", ago(1), milestone="booked")
    assert scrape(receiver)[GAUGE] == 1.0


def test_no_count_rather_than_a_false_zero_when_redis_is_down(redis_url: str) -> None:
    settings = load_settings(redis_url=redis_url, webhook_token=TOKEN,
                             salesforce_org_ids=[soapmsg.ORG_ID])
    # Built as the receiver builds its own: one quick retry, not redis-py's default backoff.
    down = connect("redis://127.0.0.1:1/0", retries=1)
    receiver = Receiver(settings, redis_client=down, celery_app=celery_app)
    assert GAUGE not in scrape(receiver)


# --- the commands --------------------------------------------------------------------------


@pytest.fixture
def run(redis_url: str):
    runner = CliRunner()

    def invoke(*args: str, url: str = redis_url):
        get_settings.cache_clear()  # each command reads the environment it is given
        try:
            return runner.invoke(cli, list(args), env={"O2C_REDIS_URL": url,
                                                       "COLUMNS": "200"})
        finally:
            get_settings.cache_clear()

    return invoke


def test_report_stalled_lists_them(world: redis.Redis, run) -> None:
    result = run("report", "--stalled")
    assert result.exit_code == 0, result.output
    assert "2 stalled" in result.stdout and "over 5m" in result.stdout
    assert STUCK in result.stdout and ACCOUNT_STUCK in result.stdout
    assert "o2c.pricing.validate_order" in result.stdout and "15m" in result.stdout
    for quiet in (DONE, WAITING, RECENT, ACCOUNT_SYNCED, ERP_ONLY):
        assert quiet not in result.stdout
    data = json.loads(run("report", "--stalled", "--json").stdout)
    assert (data["stall_after_s"], data["count"]) == (300, 2)
    assert [s["trace_key"] for s in data["stalled"]] == [ACCOUNT_STUCK, STUCK]
    assert data["stalled"][1]["last_event"]["event"] == "priced"
    limited = json.loads(run("report", "--stalled", "--limit", "1", "--json").stdout)
    assert [s["trace_key"] for s in limited["stalled"]] == [ACCOUNT_STUCK]


def test_report_stalled_with_none(redis_client: redis.Redis, run) -> None:
    result = run("report", "--stalled", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"stall_after_s": 300, "count": 0, "stalled": [],
                                        "requeuing": 0}
    assert "0 stalled" in run("report", "--stalled").stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--stalled", "--since", "2h"], "takes no --since"),
    (["--limit", "5"], "--limit goes with --stalled"),
    (["--stalled", "--limit", "0"], "Invalid value for '--limit'"),
])
def test_report_refuses_a_bad_combination(redis_client: redis.Redis, run, args: list[str],
                                          message: str) -> None:
    result = run("report", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_report_stalled_without_redis(run) -> None:
    result = run("report", "--stalled", url="redis://127.0.0.1:1/0")
    assert result.exit_code == 2
    assert "cannot reach Redis" in result.output


def test_status_marks_a_stalled_transaction(world: redis.Redis, run) -> None:
    result = run("status", STUCK)
    assert result.exit_code == 0, result.output
    assert "stage: won" in result.stdout
    assert "stalled: no progress for 15m" in result.stdout
    assert "since priced" in result.stdout
    data = json.loads(run("status", STUCK, "--json").stdout)
    assert data["stalled"] is True
    assert data["last_progress_at"] == pytest.approx(ago(900), abs=2)


@pytest.mark.parametrize(("trace_key", "stage"), [
    (DONE, "written_back"), (WAITING, "dead_lettered"), (RECENT, "won"),
    (ACCOUNT_SYNCED, "synced"), (ERP_ONLY, "unknown"),
])
def test_status_does_not_mark_the_others(world: redis.Redis, run, trace_key: str,
                                         stage: str) -> None:
    result = run("status", trace_key)
    assert result.exit_code == 0, result.output
    assert f"stage: {stage}" in result.stdout and "stalled" not in result.stdout
    data = json.loads(run("status", trace_key, "--json").stdout)
    assert data["stalled"] is False and data["stage"] == stage
