"""Status write-backs through the outbox, end to end: real workers as subprocesses, the
receiver under gunicorn, the simulators over HTTP; calls counted by the Salesforce
simulator's own records."""

from __future__ import annotations

import time

import pytest

from config import load_settings
from o2c_workers import keys, sfid
from o2c_workers.delivery.census import census
from o2c_workers.dlq.ops import requeue
from o2c_workers.receiver.replan import build_dlq
from o2c_workers.writeback import Outbox
from tests.plugins.workers import wait_for

COMPOSITE = ("PATCH", "composite/sobjects")


def member(opp: str) -> str:
    return f"Opportunity:{sfid.to18(opp)}"


@pytest.mark.slow
def test_a_lone_orders_write_back_is_one_call(o2c_factory):
    o2c = o2c_factory()
    opp = o2c.ok_opportunities()[0]
    o2c.win([opp])
    o2c.wait_written_back([opp])
    calls = o2c.sf_calls()
    # To book: one query (the opportunity, its account and lines), one composite call
    # for the opportunity's order and its account's customer number.
    assert calls == {("GET", "query"): 1, COMPOSITE: 1}
    o2c.wait_settled()
    record = o2c.sf_records("Opportunity")[opp]
    assert record["Invoice_Status__c"] and record["Payment_Status__c"]
    life = o2c.sf_calls()
    assert life.get(("PATCH", "Opportunity"), 0) == 0
    assert life[COMPOSITE] <= 3, life


@pytest.mark.slow
def test_an_accepted_write_survives_a_sigkill_of_its_worker(o2c_factory, redis_client):
    o2c = o2c_factory(order_worker=False)
    opp = o2c.ok_opportunities()[0]
    [front] = o2c.workers
    o2c.win([opp])
    wait_for(lambda: census(redis_client, "o2c", ["order"]).queued, timeout_s=60,
             what="the order step queued")
    # Only the order worker's flusher runs, and it is killed once the write is in.
    front.stop()
    order_worker = o2c.start_order_worker()
    accepted = keys.sfout_record("o2c", member(opp))
    wait_for(lambda: redis_client.exists(accepted), timeout_s=30, interval_s=0.005,
             what="the write-back accepted")
    order_worker.kill()
    assert redis_client.zscore(keys.sfout_due("o2c"), member(opp)) is not None, \
        "claimed before the kill: nothing proved"
    assert o2c.sf_calls().get(COMPOSITE, 0) == 0
    time.sleep(3.0)  # longer than O2C_SF_FLUSH_S: no flusher runs, nothing is sent
    assert o2c.sf_calls().get(COMPOSITE, 0) == 0
    assert Outbox(redis_client, prefix="o2c", flush_s=2).waiting() == 2
    # Another worker's flusher sends what the dead one accepted.
    o2c.workers.append(o2c.fleet.start_worker("invoice", concurrency=1, name="rescuer"))
    o2c.workers[-1].wait_ready()
    o2c.wait_written_back([opp], timeout_s=30)
    order = o2c.sales_orders_by_opportunity()[opp][0]
    assert o2c.sf_records("Opportunity")[opp]["ERP_Order_Number__c"] == order["name"]
    assert o2c.sf_calls()[COMPOSITE] >= 1


@pytest.mark.slow
def test_a_refused_account_is_dead_lettered_alone_and_its_replay_lands(
        o2c_factory, redis_url):
    o2c = o2c_factory()
    opp = o2c.ok_opportunities()[0]
    account = o2c.sf_records("Opportunity")[opp]["AccountId"]
    rule = f"{o2c.sandbox.sf_url}/_sandbox/records/Account/{account}/rule"
    o2c.sf.post(rule, json={"message": "Customer numbers are set by finance"},
                timeout=10).raise_for_status()
    o2c.win([opp])
    o2c.wait_written_back([opp])
    store = o2c.dead_letters()
    [entry_id] = wait_for(lambda: store.ids(trace_key=opp), what="the account's dead letter")
    entry = store.get(entry_id)
    assert (entry.category, entry.task) == ("business", "o2c.order.write_status")
    assert "Customer numbers are set by finance" in entry.message
    assert o2c.sf_records("Account")[account]["ERP_Customer_Number__c"] is None
    # Sales ops lift the rule; ops requeue the write.
    o2c.sf.post(rule, json={"message": None}, timeout=10).raise_for_status()
    report = requeue(build_dlq(load_settings(redis_url=redis_url), client=o2c.redis),
                     [entry_id])
    assert [done["id"] for done in report.done] == [entry_id]
    wait_for(lambda: o2c.sf_records("Account")[account]["ERP_Customer_Number__c"],
             timeout_s=30, what="the customer number written back")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.brokers("redis", "amqp")
def test_a_burst_of_a_hundred_wins_is_read_and_written_back_in_a_handful_of_calls(
        o2c_factory, broker):
    o2c = o2c_factory(world_args={"accounts": 20, "opportunities": 100})
    o2c.win()
    ids = o2c.ok_opportunities()
    o2c.wait_written_back(ids, timeout_s=180)
    o2c.wait_settled(timeout_s=180)
    calls = o2c.sf_calls()
    records = o2c.sf_records("Opportunity")
    assert all(records[i]["Invoice_Status__c"] for i in ids)
    writes = calls[COMPOSITE] + calls.get(("PATCH", "Opportunity"), 0)
    # Every order's write-back, invoice status and payment status, and every account's
    # customer number: 400 record writes in all, a handful of calls.
    assert writes <= 30, calls
    # The wins come in outbound messages of up to 100: each message's opportunities are
    # read in queries of up to 50 (a step that starts while another reads its group waits
    # for it), not one query each.
    assert calls[("GET", "query")] <= 12, calls
    print(f"\nSalesforce calls for {len(ids)} booked orders: {calls}; writes per order "
          f"{writes / len(ids):.2f}, all calls per order {sum(calls.values()) / len(ids):.2f}")
