"""The write-back outbox and its flusher on real Redis, sending to the Salesforce simulator
over HTTPS; the calls are counted by the simulator's own records."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from o2c_workers import keys, sfid
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.salesforce import SalesforceClient
from o2c_workers.sandbox.salesforce import SalesforceServer
from o2c_workers.sandbox.world import World, generate_world
from o2c_workers.writeback import Outbox, Write, stamp_of
from o2c_workers.writeback.flusher import Flusher
from o2c_workers.writeback.outbox import LEASE_S, Outcome, new_owner
from tests.salesforce.test_client import api_calls, records, settings_for

P = "o2c"
#: The shipped flush delay (``O2C_SF_FLUSH_S``).
FLUSH_S = 2.0
T1, T2, T3 = "2026-12-03 10:00:00.000001", "2026-12-03 10:00:05.000000", "2026-12-03 11:00:00"


@pytest.fixture
def sf(salesforce: SalesforceServer) -> Iterator[SalesforceClient]:
    client = SalesforceClient(settings_for(salesforce))
    yield client
    client.close()


@pytest.fixture
def outbox(redis_client: redis.Redis) -> Outbox:
    return Outbox(redis_client, prefix=P, flush_s=FLUSH_S)


@pytest.fixture
def dead_letters(redis_client: redis.Redis) -> DeadLetterStore:
    return DeadLetterStore(redis_client, prefix=P)


def flusher_of(outbox: Outbox, sf: SalesforceClient, dead_letters: DeadLetterStore) -> Flusher:
    return Flusher(outbox, salesforce=lambda: sf, dead_letters=dead_letters,
                   client=outbox.client)


@pytest.fixture
def flusher(outbox: Outbox, sf: SalesforceClient, dead_letters: DeadLetterStore) -> Flusher:
    return flusher_of(outbox, sf, dead_letters)


def opportunities(world: World, n: int) -> list[str]:
    return [o["Id"] for o in world.of("Opportunity")[:n]]


def status(opp: str, value: str, modified: str | None, field: str = "Invoice_Status__c",
           **more: Any) -> Write:
    return Write("Opportunity", opp, {field: value, **more}, stamp=stamp_of(modified),
                 trace_key=opp, source="Sales Invoice ACC-SINV-1")


def composite_calls(handle: SalesforceServer) -> int:
    return api_calls(handle).get(("PATCH", "composite/sobjects"), 0)


def opp_record(handle: SalesforceServer, opp: str) -> dict[str, Any]:
    return records(handle, "Opportunity")[sfid.to15(opp)]


def test_stamps_order_versions_and_an_absent_one_orders_first() -> None:
    assert stamp_of(T1) < stamp_of(T2) < stamp_of("2026-12-03T11:00:00+01:00") + 1
    assert stamp_of("2026-12-03T10:00:05") == stamp_of(T2)
    assert stamp_of(None) == stamp_of("yesterday") == 0 < stamp_of(T1)


def test_writes_of_different_kinds_to_one_record_merge_into_one_call(
        outbox, flusher, salesforce, world) -> None:
    opp = opportunities(world, 1)[0]
    account = world.of("Account")[0]["Id"]
    outbox.accept([status(opp, "Unpaid", T1)])
    outbox.accept([Write("Opportunity", opp, {"ERP_Order_Number__c": "SAL-ORD-1",
                                              "ERP_Order_Status__c": "To Bill"},
                         stamp=stamp_of(T2), trace_key=opp)])
    outbox.accept([status(opp, "Paid", T3, Payment_Status__c="Paid")])
    outbox.accept([Write("Account", account, {"ERP_Customer_Number__c": "CUST-1"}, stamp=0,
                         trace_key=opp)])
    assert outbox.waiting() == 2
    assert flusher.drain() == 1
    assert composite_calls(salesforce) == 1
    record = opp_record(salesforce, opp)
    assert (record["ERP_Order_Number__c"], record["ERP_Order_Status__c"],
            record["Invoice_Status__c"], record["Payment_Status__c"]) == (
        "SAL-ORD-1", "To Bill", "Paid", "Paid")
    assert records(salesforce, "Account")[sfid.to15(account)]["ERP_Customer_Number__c"] == \
        "CUST-1"
    assert outbox.waiting() == 0


def test_a_stale_write_never_overwrites_a_newer_status(outbox, flusher, salesforce,
                                                       world, redis_client) -> None:
    opp = opportunities(world, 1)[0]
    assert outbox.accept([status(opp, "Paid", T2)]) == 1
    # An event read before the payment, accepted after it: refused while pending...
    assert outbox.accept([status(opp, "Unpaid", T1)]) == 0
    flusher.drain()
    assert opp_record(salesforce, opp)["Invoice_Status__c"] == "Paid"
    # ... and after the newer one was sent (the outbox remembers what it sent).
    assert outbox.accept([status(opp, "Unpaid", T1)]) == 0
    assert outbox.waiting() == 0
    sent = keys.sfout_sent(P, f"Opportunity:{sfid.to18(opp)}")
    assert 29 * 86_400 < redis_client.ttl(sent) <= 30 * 86_400
    # The same version again is taken (a reconcile repair writes what the ERP says now).
    assert outbox.accept([status(opp, "Paid", T2)]) == 1
    # A newer version wins, and the 15-character form of the id is the same record.
    assert outbox.accept([status(opp[:15], "Overdue", T3)]) == 1
    assert outbox.waiting() == 1
    flusher.drain()
    assert opp_record(salesforce, opp)["Invoice_Status__c"] == "Overdue"
    assert composite_calls(salesforce) == 2


def test_a_burst_waits_for_the_flush_delay_then_goes_in_one_call_per_200(
        outbox, flusher, salesforce, world) -> None:
    opps = opportunities(world, 30)
    started = time.monotonic()
    for n in range(250):
        opp = opps[n % 30]
        outbox.accept([status(opp, f"v{n}", f"2026-12-03 10:00:{n // 30:02d}")])
    assert outbox.waiting() == 30
    wait = flusher.flush_once()
    assert wait is not None and 0 < wait <= FLUSH_S
    assert composite_calls(salesforce) == 0
    while (wait := flusher.flush_once()) != 0.0:
        assert time.monotonic() - started < FLUSH_S + 1, "the batch was not sent when due"
        time.sleep(min(wait or 0.05, 0.05))
    assert time.monotonic() - started >= FLUSH_S - 0.05
    assert composite_calls(salesforce) == 1 and outbox.waiting() == 0
    assert opp_record(salesforce, opps[9])["Invoice_Status__c"] == "v249"


def test_a_full_batch_goes_at_once_and_the_rest_follows(outbox, flusher,
                                                       salesforce_factory) -> None:
    big = generate_world(seed=3, accounts=20, opportunities=230)
    handle = salesforce_factory(on=big)
    client = SalesforceClient(settings_for(handle))
    sender = Flusher(outbox, salesforce=lambda: client, dead_letters=flusher.dead_letters,
                     client=outbox.client)
    opps = opportunities(big, 230)
    outbox.accept([status(o, "Invoiced", T1) for o in opps])
    assert sender.flush_once() == 0.0, "200 waiting records are a full batch, due or not"
    assert outbox.waiting() == 30 and composite_calls(handle) == 1
    assert sender.drain() == 1
    assert composite_calls(handle) == 2
    assert {r["Invoice_Status__c"] for r in records(handle, "Opportunity").values()} == \
        {"Invoiced"}
    client.close()


def test_a_refused_record_is_dead_lettered_alone_and_the_others_land(
        outbox, flusher, salesforce, world, dead_letters) -> None:
    gone, ruled, *fine = opportunities(world, 5)
    control = salesforce.session()
    control.post(f"{salesforce.url}/_sandbox/records/Opportunity/{gone}/delete", timeout=5)
    control.post(f"{salesforce.url}/_sandbox/records/Opportunity/{ruled}/rule",
                 json={"message": "Invoice status is locked"}, timeout=5)
    outbox.accept([status(o, "Paid", T1) for o in (gone, ruled, *fine)])
    assert flusher.drain() == 1
    assert composite_calls(salesforce) == 1
    assert all(opp_record(salesforce, o)["Invoice_Status__c"] == "Paid" for o in fine)
    assert outbox.waiting() == 0
    entries = {e.trace_key: e for e in dead_letters.many(dead_letters.ids())}
    assert set(entries) == {gone, ruled}
    assert entries[gone].category == "not_found"
    assert entries[ruled].category == "business"
    assert entries[ruled].error_class == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert "Invoice status is locked" in entries[ruled].message
    assert entries[gone].task == "o2c.order.write_status" and entries[gone].domain == "order"
    [write] = entries[gone].args[0]["writes"]
    assert Write.load(write) == Write("Opportunity", gone, {"Invoice_Status__c": "Paid"},
                                      stamp=stamp_of(T1), trace_key=gone,
                                      source="Sales Invoice ACC-SINV-1",
                                      stamps={"Invoice_Status__c": stamp_of(T1)})
    assert "secret" not in json.dumps(entries[gone].model_dump(mode="json")).lower()


def test_a_transient_failure_puts_the_batch_back_and_loses_nothing(
        outbox, flusher, salesforce, world, dead_letters, redis_client) -> None:
    opps = opportunities(world, 3)
    faults = f"{salesforce.url}/_sandbox/faults"
    # More 503s than the client's quick retries: the flush as a whole fails.
    salesforce.session().post(faults, json={"resource": "composite/sobjects", "status": 503,
                                            "count": 3}, timeout=5)
    outbox.accept([status(o, "Paid", T1) for o in opps])
    assert flusher.flush_once(force=True) == 0.0
    assert composite_calls(salesforce) == 3
    assert outbox.waiting() == 3 and dead_letters.count() == 0
    due = redis_client.zrange(keys.sfout_due(P), 0, -1, withscores=True)
    now_ms = time.time() * 1000
    assert all(now_ms < score <= now_ms + 2_500 for _, score in due), due
    assert flusher.drain() == 1
    assert all(opp_record(salesforce, o)["Invoice_Status__c"] == "Paid" for o in opps)
    assert outbox.waiting() == 0 and dead_letters.count() == 0


def test_the_request_limit_waits_its_time_and_spends_no_try(
        outbox, flusher, salesforce, world, redis_client) -> None:
    opp = opportunities(world, 1)[0]
    salesforce.session().post(f"{salesforce.url}/_sandbox/faults", json={
        "resource": "composite/sobjects", "status": 403}, timeout=5)
    outbox.accept([status(opp, "Paid", T1)])
    flusher.flush_once(force=True)
    member = f"Opportunity:{sfid.to18(opp)}"
    score = redis_client.zscore(keys.sfout_due(P), member)
    assert score is not None and score > (time.time() + 800) * 1000
    assert redis_client.hget(keys.sfout_record(P, member), "tries") is None


def test_a_batch_refused_whole_is_split_until_its_records_go(
        outbox, flusher, salesforce, world) -> None:
    opps = opportunities(world, 4)
    salesforce.session().post(f"{salesforce.url}/_sandbox/faults", json={
        "resource": "composite/sobjects", "status": 400, "errorCode": "JSON_PARSER_ERROR"},
        timeout=5)
    outbox.accept([status(o, "Paid", T1) for o in opps])
    flusher.drain()
    assert composite_calls(salesforce) == 3
    assert all(opp_record(salesforce, o)["Invoice_Status__c"] == "Paid" for o in opps)


def test_claims_never_overlap_and_a_dead_flushers_claim_comes_back(
        outbox, flusher, salesforce, world, redis_client) -> None:
    opps = opportunities(world, 30)
    outbox.accept([status(o, "Paid", T1) for o in opps])
    claims: list[Any] = []
    go = threading.Barrier(4)

    def claim(owner: str) -> None:
        go.wait()
        claims.append((owner, outbox.claim(owner, limit=10, force=True)))

    threads = [threading.Thread(target=claim, args=(new_owner(),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    members = [p.member for _, c in claims if isinstance(c, list) for p in c]
    assert sorted(members) == sorted(f"Opportunity:{sfid.to18(o)}" for o in opps)
    # Those flushers died holding their claims: nobody sends them before the leases end.
    assert flusher.flush_once(force=True) is None, "nothing claimable"
    assert composite_calls(salesforce) == 0
    leased = redis_client.zrange(keys.sfout_leased(P), 0, -1, withscores=True)
    assert len(leased) == 30
    # The lease is the subject here: run its clock out rather than wait a minute.
    expired = {m: time.time() * 1000 - 1 for m, _ in leased}
    assert LEASE_S >= 30
    redis_client.zadd(keys.sfout_leased(P), expired)
    assert flusher.drain() == 1
    assert composite_calls(salesforce) == 1 and outbox.waiting() == 0
    # A dead flusher that comes back to settle finds its leases gone: nothing changes.
    owner, late = next((o, c) for o, c in claims if isinstance(c, list) and c)
    assert outbox.settle(owner, [Outcome(p, "retry", 0) for p in late]) == 0
    assert outbox.waiting() == 0


def test_a_write_accepted_while_its_record_is_in_flight_goes_next(
        outbox, flusher, salesforce, world) -> None:
    opp = opportunities(world, 1)[0]
    outbox.accept([status(opp, "Unpaid", T1)])
    owner = new_owner()
    [claimed] = outbox.claim(owner, force=True)  # type: ignore[misc]
    outbox.accept([status(opp, "Paid", T2)])
    assert outbox.settle(owner, [Outcome(claimed, "sent")]) == 1
    assert outbox.waiting() == 1, "the newer write was cleared with the older one"
    flusher.drain()
    assert opp_record(salesforce, opp)["Invoice_Status__c"] == "Paid"


def test_reconcile_explains_a_stale_write_back_that_waits_in_the_outbox(
        outbox, world, redis_client) -> None:
    from o2c_workers.reconcile.explain import RUNNING, explain
    from o2c_workers.reconcile.findings import Finding

    waiting, other = opportunities(world, 2)
    outbox.accept([status(waiting, "Paid", T1)])
    findings = [Finding("stale_write_back", o, "Invoice_Status__c differs")
                for o in (waiting[:15], other)]
    states = explain(redis_client, P, findings, stall_after_s=300)
    assert states[waiting[:15]].state == RUNNING
    assert findings[0].explanation == "write-back waiting in the outbox"
    assert states[other].state is None and findings[1].explanation is None


def test_after_its_last_try_a_failing_batch_is_dead_lettered_exhausted(
        outbox, sf, salesforce, world, dead_letters) -> None:
    from o2c_workers.writeback.flusher import Retries

    opp = opportunities(world, 1)[0]
    # The number of tries is the subject here: two (O2C_RETRY_MAX_ATTEMPTS).
    flusher = Flusher(outbox, salesforce=lambda: sf, dead_letters=dead_letters,
                      client=outbox.client, retries=Retries(max_attempts=2))
    salesforce.session().post(f"{salesforce.url}/_sandbox/faults", json={
        "resource": "composite/sobjects", "status": 500, "count": 6}, timeout=5)
    outbox.accept([status(opp, "Paid", T1)])
    flusher.flush_once(force=True)
    assert outbox.waiting() == 1 and dead_letters.count() == 0
    flusher.flush_once(force=True)
    assert outbox.waiting() == 0
    [entry] = dead_letters.many(dead_letters.ids())
    assert (entry.category, entry.attempts, entry.trace_key) == ("exhausted", 2, opp)
    assert composite_calls(salesforce) == 6


def test_refused_credentials_dead_letter_the_batch_auth(outbox, flusher, salesforce, world,
                                                        dead_letters) -> None:
    opps = opportunities(world, 2)
    # Refused after the client fetched a new token too.
    salesforce.session().post(f"{salesforce.url}/_sandbox/faults", json={
        "resource": "composite/sobjects", "status": 401, "count": 2}, timeout=5)
    outbox.accept([status(o, "Paid", T1) for o in opps])
    flusher.drain()
    entries = dead_letters.many(dead_letters.ids())
    assert sorted(e.trace_key for e in entries) == sorted(opps)
    assert {e.category for e in entries} == {"auth"}
    assert outbox.waiting() == 0
