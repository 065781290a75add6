"""Stalled transactions re-driven by the sweep: started again from their first step with the
record as it is now; one with an open dead letter is waiting for people and is left."""

from __future__ import annotations

import time
from typing import Any

from o2c_workers import sfid, timeline
from o2c_workers.dlq import DeadLetter, DeadLetterStore, Status
from o2c_workers.sweeps.run import run_sweeps
from tests.helpers import queued
from tests.sweeps.conftest import Sweeping

#: Past the shipped O2C_STALL_AFTER_S (300 s).
LONG_AGO_S = 400


def stall(redis_client: Any, trace_key: str, *, account: bool = False) -> None:
    """A chain that took its record in long ago and stopped after pricing (its message
    lost), as the timeline shows it."""
    at = time.time() - LONG_AGO_S
    timeline.record(redis_client, "o2c", trace_key, "received", at=at, route="x")
    if not account:
        timeline.record(redis_client, "o2c", trace_key, "priced", at=at + 1,
                        task="o2c.pricing.validate_order")


def test_a_stalled_transaction_is_redriven_and_one_with_an_open_dead_letter_is_not(
        sweeping: Sweeping, redis_client: Any) -> None:
    stalled, waiting, lost = sweeping.unwon(3)
    sweeping.win([stalled, waiting, lost])
    sweeping.sandbox.salesforce.simulator.store.save("Opportunity", lost,
                                                     {"StageName": "Closed Lost"})
    account = sweeping.sandbox.world.of("Account")[0]["Id"]
    for trace_key in (stalled, waiting, lost):
        stall(redis_client, trace_key)
    stall(redis_client, account, account=True)
    gone = sfid.to18("0065L00003ZZZZZ")  # deleted in Salesforce since
    stall(redis_client, gone)
    now = time.time()
    DeadLetterStore(redis_client, prefix="o2c").add(DeadLetter(
        trace_key=waiting, domain="pricing", task="o2c.pricing.validate_order",
        error_class="BusinessError", category="credit_hold", message="on hold",
        remediation="Finance", first_failed_at=now, last_failed_at=now))

    result = run_sweeps(sweeping.sweeper)
    by_sweep = {s.sweep: {f.trace_key: f.outcome for f in s.found} for s in result.sweeps}
    # The won ones are in flight, so the opportunity sweep leaves them to the re-drive.
    assert by_sweep["opportunities"] == {stalled: "running", waiting: "dead_lettered"}
    # The lost one is re-driven on the route of its stage now: its order follows it.
    assert by_sweep["stalled"] == {stalled: "redriven", account: "redriven", lost: "redriven",
                                   gone: "left"}
    messages = {m["headers"]["trace_key"]: m for m in queued(redis_client, "customer")}
    assert sorted(messages) == sorted([stalled, account])
    [follow] = queued(redis_client, "order")
    assert (follow["headers"]["trace_key"], follow["headers"]["task"]) == (
        lost, "o2c.order.follow_opportunity")
    assert messages[stalled]["headers"]["task"] == "o2c.customer.ensure_customer"
    assert messages[account]["headers"]["task"] == "o2c.customer.sync_account"
    [payload] = messages[stalled]["args"]
    assert payload["record"]["StageName"] == "Closed Won"
    last = timeline.read(redis_client, "o2c", stalled)[-1]
    assert last["event"] == "redriven" and last["last_event"] == "priced"
    assert last["stalled_since"] < now - 300
    # One SOQL call per object type for the stalled ids.
    [stalled_sweep] = [s for s in result.sweeps if s.sweep == "stalled"]
    assert stalled_sweep.api_calls == 2

    # Re-driven, it is moving again: the next run leaves it alone.
    again = run_sweeps(sweeping.sweeper)
    assert again.sweeps[-1].sweep == "stalled"
    assert {f.trace_key: f.outcome for f in again.sweeps[-1].found} == {gone: "left"}
    assert len(queued(redis_client, "customer")) == 2
    assert len(queued(redis_client, "order")) == 1


def test_one_whose_dead_letter_is_left_requeuing_is_not_started_again(
        sweeping: Sweeping, redis_client: Any) -> None:
    """A requeue to RabbitMQ that died after its claim leaves the entry ``requeuing``: still
    in the queue, for ``o2c dlq requeue --reclaim``, so neither sweep starts it behind it."""
    [claimed] = sweeping.unwon(1)
    sweeping.win([claimed])
    stall(redis_client, claimed)
    now = time.time()
    DeadLetterStore(redis_client, prefix="o2c").add(DeadLetter(
        trace_key=claimed, domain="pricing", task="o2c.pricing.validate_order",
        error_class="BusinessError", category="credit_hold", message="on hold",
        remediation="Finance", first_failed_at=now, last_failed_at=now,
        status=Status.REQUEUING, requeue_claim="cli:ops:0123456789",
        requeue_claimed_at=now - LONG_AGO_S))
    result = run_sweeps(sweeping.sweeper)
    by_sweep = {s.sweep: {f.trace_key: f.outcome for f in s.found} for s in result.sweeps}
    assert by_sweep["opportunities"] == {claimed: "dead_lettered"}
    assert claimed not in by_sweep["stalled"]
    assert queued(redis_client, "customer") == []
