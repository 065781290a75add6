"""Ops fix the ERP, requeue the dead letter, and the order is booked once."""

from __future__ import annotations

import pytest
import requests

from config import load_settings
from o2c_workers.dlq import Status
from o2c_workers.dlq.ops import requeue
from o2c_workers.receiver.replan import build_dlq
from o2c_workers.status import transaction_status
from tests.plugins.workers import wait_for


@pytest.mark.slow
@pytest.mark.brokers("redis", "amqp")
def test_fix_the_tax_rule_then_requeue_books_the_order_once(o2c_factory, redis_url, broker):
    o2c = o2c_factory(world_args={"missing_tax": 1, "accounts": 4, "opportunities": 4})
    [(opp_id, category)] = o2c.world.expected_failures.items()
    assert category == "tax_configuration"
    o2c.win()
    o2c.wait_written_back(o2c.ok_opportunities())
    store = o2c.dead_letters()
    [entry_id] = wait_for(lambda: store.ids(trace_key=opp_id), what="the dead letter")
    entry = store.get(entry_id)
    assert entry.category == "tax_configuration"
    account = o2c.sf_records("Account")[o2c.sf_records("Opportunity")[opp_id]["AccountId"]]

    # Finance adds the missing tax rule in the ERP; ops requeue the transaction.
    requests.post(f"{o2c.sandbox.erp_url}/_sandbox/tax-rules",
                  json={"country": account["BillingCountry"], "rate": 10},
                  timeout=10).raise_for_status()
    dlq = build_dlq(load_settings(redis_url=redis_url, broker_url=broker.url), client=o2c.redis)
    report = requeue(dlq, [entry_id])
    assert [done["id"] for done in report.done] == [entry_id]
    # Requeueing it again is refused: it enqueues once.
    again = requeue(dlq, [entry_id])
    assert (again.done, len(again.refused)) == ([], 1)

    o2c.wait_written_back([opp_id])
    assert len(o2c.sales_orders_by_opportunity()[opp_id]) == 1
    resolved = wait_for(lambda: store.get(entry_id).status is Status.RESOLVED,
                        what="the dead letter to be resolved by the success")
    assert resolved
    status = transaction_status(o2c.redis, "o2c", opp_id, stall_after_s=300)
    events = [event["event"] for event in status["timeline"]]
    assert events.index("dead_lettered") < events.index("requeued") < events.index(
        "written_back")
    assert status["milestones"]["requeues"] == 1
