"""Lost answers, crashed workers, an ERP that is down or throttling: one order each."""

from __future__ import annotations

import pytest
import requests

from tests.plugins.workers import wait_for


def assert_one_order_each(o2c, ids):
    orders = o2c.sales_orders_by_opportunity()
    assert sorted(orders) == sorted(ids)
    assert [len(found) for found in orders.values()] == [1] * len(ids)


@pytest.mark.slow
def test_a_lost_answer_after_commit_creates_one_order(o2c_factory):
    o2c = o2c_factory(erp={"faults": {"timeout_after_commit_rate": 0.5, "timeout_hang_s": 2.5}},
                      env={"O2C_ERP_TIMEOUT_S": "1"})
    ids = o2c.ok_opportunities()
    o2c.win()
    o2c.wait_written_back(ids, timeout_s=90)
    stats = o2c.erp_stats()
    assert stats["faults_injected"]["timeout_after_commit"] > 0
    assert_one_order_each(o2c, ids)
    customers = o2c.erp_docs("Customer")
    assert len({c["salesforce_id"] for c in customers}) == len(customers)
    assert o2c.dead_letters().count() == 0


@pytest.mark.slow
@pytest.mark.brokers("redis", "amqp")
def test_worker_killed_in_the_middle_of_submit_order(o2c_factory, broker):
    """The ERP commits the order but its answer has not come back when the whole order
    worker is SIGKILLed. The message returns (Redis: within O2C_REDELIVERY_AFTER_S; RabbitMQ:
    when the connection closes), the retry reads the opportunity's orders first, finds the
    one committed, links it (no second POST) and the chain completes."""
    o2c = o2c_factory(world_args={"opportunities": 1, "accounts": 1}, order_worker=False,
                      env={"O2C_ERP_TIMEOUT_S": "30"})
    [opp] = o2c.ok_opportunities()
    o2c.win([opp])
    wait_for(lambda: o2c.held_and_queued(["order"]) == (1, 0), interval_s=0.5,
             what="the order step to be queued")
    o2c.erp_faults(timeout_after_commit_rate=1.0, timeout_hang_s=60)
    worker = o2c.start_order_worker()
    wait_for(lambda: o2c.erp_docs("Sales Order"), what="the ERP to commit the order")
    # submit_order is still waiting for the answer: held by the worker, not queued.
    wait_for(lambda: o2c.held_and_queued(["order"]) == (0, 1), timeout_s=15, interval_s=0.5,
             what="the order step held by its worker")
    worker.kill()
    o2c.erp_faults(timeout_after_commit_rate=0)
    o2c.start_order_worker()
    o2c.wait_written_back([opp], timeout_s=60)
    assert_one_order_each(o2c, [opp])
    calls = requests.get(f"{o2c.sandbox.erp_url}/_sandbox/calls", timeout=10).json()["calls"]
    assert [c["method"] for c in calls if c["doctype"] == "Sales Order"].count("POST") == 1
    assert o2c.dead_letters().count() == 0


@pytest.mark.slow
def test_erp_down_for_a_while_then_every_order_completes(o2c_factory):
    o2c = o2c_factory()
    ids = o2c.ok_opportunities()
    o2c.erp_faults(maintenance_for_s=5)
    o2c.win()
    o2c.wait_written_back(ids, timeout_s=90)
    assert o2c.erp_stats()["faults_injected"]["maintenance"] > 0
    assert_one_order_each(o2c, ids)
    assert o2c.dead_letters().count() == 0


@pytest.mark.slow
def test_a_storm_of_429s_is_honoured(o2c_factory):
    o2c = o2c_factory(world_args={"opportunities": 8, "accounts": 6},
                      erp={"faults": {"rate_limit_per_s": 8}})
    ids = o2c.ok_opportunities()
    o2c.win()
    o2c.wait_written_back(ids, timeout_s=90)
    stats = o2c.erp_stats()
    o2c.erp_faults(rate_limit_per_s=None)  # let the test's own reads through
    assert stats["faults_injected"]["rate_limited"] > 0
    assert stats["peak_requests_per_s"]["accepted"] <= 8
    assert_one_order_each(o2c, ids)
    assert o2c.dead_letters().count() == 0
