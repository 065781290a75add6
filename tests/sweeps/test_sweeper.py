"""The sweeps in-process against the sandbox's Salesforce over HTTPS, on the test Redis:
what they start, what they leave alone, the watermark, and the race with a notification."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from o2c_workers import app as celery_app
from o2c_workers import keys, timeline
from o2c_workers.dlq import DeadLetter, DeadLetterStore
from o2c_workers.receiver.app import Receiver
from o2c_workers.sandbox.salesforce import SalesforceConfig
from o2c_workers.services import shared_reads
from o2c_workers.services.shared_reads import ReadGroup
from o2c_workers.sweeps import state
from o2c_workers.sweeps.run import run_sweeps
from o2c_workers.sweeps.state import SweepBusy
from tests.helpers import call_wsgi, queued
from tests.sweeps.conftest import Sweeping, sandbox_settings

TOKEN = "sweep-test-token"


def outcomes(result: Any, sweep: str = "opportunities") -> dict[str, str]:
    [found] = [s for s in result.sweeps if s.sweep == sweep]
    return {f.trace_key: f.outcome for f in found.found}


def opening_events(sweeping: Sweeping, trace_key: str) -> list[str]:
    events = timeline.read(sweeping.redis, "o2c", trace_key)
    return [e["event"] for e in events if e["event"] in timeline.OPENING_EVENTS]


def test_a_sweep_starts_each_won_opportunity_once_as_a_notification_would(
        sweeping: Sweeping) -> None:
    opps = sweeping.unwon(3)
    sweeping.win(opps)
    before = time.time()
    result = run_sweeps(sweeping.sweeper)
    assert outcomes(result) == dict.fromkeys(opps, "started")
    messages = queued(sweeping.redis, "customer")
    assert sorted(m["headers"]["trace_key"] for m in messages) == sorted(opps)
    message = messages[0]
    [payload] = message["args"]
    assert message["headers"]["task"] == "o2c.customer.ensure_customer"
    assert [s["task"] for s in reversed(message["embed"]["chain"])] == [
        "o2c.pricing.validate_order", "o2c.order.submit_order", "o2c.order.write_back"]
    assert payload["route"] == "opportunity_won" and payload["sobject_type"] == "Opportunity"
    assert payload["record"]["StageName"] == "Closed Won"
    assert payload["record"]["Id"] == payload["trace_key"] == message["headers"]["trace_key"]
    assert message["headers"]["argsrepr"].endswith("swept>")
    # The page's won ones are read together by their first steps, as a message's are.
    groups = {ReadGroup.from_header(m["headers"][shared_reads.HEADER]) for m in messages}
    [group] = groups
    assert group is not None and sorted(group.ids) == sorted(opps)
    [event] = timeline.read(sweeping.redis, "o2c", opps[0])
    assert event["event"] == "swept" and event["sweep"] == "opportunities"
    assert sweeping.redis.zscore(keys.transaction_index_active("o2c"), opps[0]) is not None
    # One SOQL call per sweep (one page each); the watermark is where the first query began.
    assert [s.api_calls for s in result.sweeps] == [1, 1, 0]
    assert sweeping.query_calls() == 2
    mark = state.watermark(sweeping.redis, "o2c", "opportunities")
    assert mark is not None and before <= mark <= time.time()
    status = state.read_status(sweeping.redis, "o2c")["opportunities"]
    assert (status.seen, status.started, status.api_calls, status.runs) == (3, 3, 1, 1)

    again = run_sweeps(sweeping.sweeper)
    assert outcomes(again) == dict.fromkeys(opps, "running")
    assert len(queued(sweeping.redis, "customer")) == 3


def test_each_page_moves_the_watermark_and_a_crash_sweeps_again_without_duplicates(
        sandbox_factory: Any, sweeping_on: Any) -> None:
    sweeping = sweeping_on(sandbox_factory(sf_config=SalesforceConfig(query_batch_size=2)))
    opps = sweeping.unwon(5)
    sweeping.win(opps)

    def crash(sweep: str, seen: int, total: int) -> None:
        raise RuntimeError("the worker died after its first page")

    with pytest.raises(RuntimeError):
        run_sweeps(sweeping.sweeper, progress=crash)
    first_page = queued(sweeping.redis, "customer")
    assert len(first_page) == 2 and sweeping.query_calls() == 1
    stamps = [sweeping.sandbox.salesforce.simulator.store.get("Opportunity", o)
              ["LastModifiedDate"].timestamp() for o in opps]
    assert state.watermark(sweeping.redis, "o2c", "opportunities") == sorted(stamps)[1]
    failed = state.read_status(sweeping.redis, "o2c")["opportunities"]
    assert failed.failed_at is not None and "RuntimeError" in str(failed.error)

    result = run_sweeps(sweeping.sweeper)
    found = outcomes(result)
    assert sorted(o for o, what in found.items() if what == "running") == sorted(
        m["headers"]["trace_key"] for m in first_page)
    assert sorted(found) == sorted(opps) and list(found.values()).count("started") == 3
    assert sorted(sweeping.queued()) == sorted(opps)
    assert [s.api_calls for s in result.sweeps][:1] == [3]
    assert state.read_status(sweeping.redis, "o2c")["opportunities"].failed_at is None


def test_dead_lettered_and_done_ones_are_left_and_a_re_win_starts_again(
        sweeping: Sweeping, redis_client: Any) -> None:
    waiting, done = sweeping.unwon(2)
    sweeping.win([waiting, done])
    now = time.time()
    DeadLetterStore(redis_client, prefix="o2c").add(DeadLetter(
        trace_key=waiting, domain="pricing", task="o2c.pricing.validate_order",
        error_class="BusinessError", category="credit_hold", message="on hold",
        remediation="Finance", first_failed_at=now, last_failed_at=now))
    first = outcomes(run_sweeps(sweeping.sweeper))
    assert first == {waiting: "dead_lettered", done: "started"}
    timeline.record(redis_client, "o2c", done, "written_back", milestone="written_back")
    assert outcomes(run_sweeps(sweeping.sweeper)) == {waiting: "dead_lettered", done: "done"}

    # Lost, then won again a second later: a new version of the record, a new chain.
    store = sweeping.sandbox.salesforce.simulator.store
    store.save("Opportunity", done, {"StageName": "Closed Lost"})
    time.sleep(1.05)
    sweeping.win([done])
    assert outcomes(run_sweeps(sweeping.sweeper))[done] == "started"
    assert sweeping.queued() == [done, done]


def test_a_dry_run_lists_and_changes_nothing(sweeping: Sweeping) -> None:
    opps = sweeping.unwon(2)
    sweeping.win(opps)
    result = run_sweeps(sweeping.sweeper, dry_run=True)
    assert outcomes(result) == dict.fromkeys(opps, "would_start")
    assert sweeping.queued() == [] and state.read_status(sweeping.redis, "o2c") == {}
    assert timeline.read(sweeping.redis, "o2c", opps[0]) == []


def test_one_sweep_at_a_time(sweeping: Sweeping) -> None:
    with state.Lease(sweeping.redis, "o2c", ttl_s=60):
        with pytest.raises(SweepBusy):
            run_sweeps(sweeping.sweeper)
    assert sweeping.query_calls() == 0
    run_sweeps(sweeping.sweeper)
    assert sweeping.redis.get(keys.sweep_lock("o2c")) is None


def receiver_for(sweeping: Sweeping) -> Receiver:
    settings = sandbox_settings(sweeping.sandbox, sweeping.settings.redis_url,
                                webhook_token=TOKEN)
    return Receiver(settings, redis_client=sweeping.redis, celery_app=celery_app)


def post(receiver: Receiver, body: bytes) -> int:
    status, _, _ = call_wsgi(receiver, "POST", "/salesforce/outbound", body,
                             query=f"token={TOKEN}")
    return status


def test_a_sweep_then_the_late_notification_of_the_same_win_is_a_duplicate(
        sweeping: Sweeping) -> None:
    first, second = sweeping.unwon(2)
    sweeping.win([first, second])
    receiver = receiver_for(sweeping)
    assert post(receiver, sweeping.notification(first)) == 200
    result = run_sweeps(sweeping.sweeper)
    assert outcomes(result) == {first: "running", second: "started"}
    assert post(receiver, sweeping.notification(second)) == 200
    assert sorted(sweeping.queued()) == sorted([first, second])
    assert opening_events(sweeping, first) == ["received"]
    assert opening_events(sweeping, second) == ["swept"]


def test_a_sweep_and_a_late_notification_at_the_same_moment_start_one_chain(
        sweeping: Sweeping) -> None:
    run_sweeps(sweeping.sweeper)  # its token fetched, its watermark set: a sweep like any
    opps = sweeping.unwon(12)
    sweeping.win(opps)
    receiver = receiver_for(sweeping)
    bodies = [sweeping.notification(o) for o in opps]
    gate = threading.Barrier(len(opps) + 1)
    statuses: list[int] = []

    def notify(body: bytes, delay_s: float) -> None:
        gate.wait()
        # Spread over the sweep's few milliseconds: before it reads Redis, between its read
        # and its write, and after its write.
        time.sleep(delay_s)
        statuses.append(post(receiver, body))

    threads = [threading.Thread(target=notify, args=(b, n * 0.004))
               for n, b in enumerate(bodies)]
    for thread in threads:
        thread.start()
    gate.wait()
    result = run_sweeps(sweeping.sweeper)
    for thread in threads:
        thread.join()
    assert statuses == [200] * len(opps)
    assert sorted(sweeping.queued()) == sorted(opps), "one chain per opportunity"
    for opp in opps:
        assert len(opening_events(sweeping, opp)) == 1
    assert set(outcomes(result).values()) <= {"started", "already_started", "running"}


def test_two_saves_in_one_second_are_two_notifications_and_two_chains(
        sweeping: Sweeping) -> None:
    """Salesforce stamps LastModifiedDate to the second: a flow that loses and re-wins an
    opportunity within one second sends two notifications of one version. Each is a save of
    its own (its own Notification Id), so neither gives way to the other; a sweep gives way
    to both."""
    [opp] = sweeping.unwon(1)
    sweeping.win([opp])
    receiver = receiver_for(sweeping)
    first, again = sweeping.notification(opp), sweeping.notification(opp)
    assert post(receiver, first) == 200
    assert post(receiver, again) == 200
    assert sweeping.queued() == [opp, opp]
    assert opening_events(sweeping, opp) == ["received", "received"]
    assert post(receiver, first) == 200  # a resend of the first is still a duplicate
    assert sweeping.queued() == [opp, opp]
    assert outcomes(run_sweeps(sweeping.sweeper))[opp] in {"running", "done"}
    assert sweeping.queued() == [opp, opp]
