"""An ERP whose salesforce_id is not unique: the workers say so at start and book nothing;
once the ERP admins fix it, a requeue books the order once."""

from __future__ import annotations

import pytest
import requests

from config import load_settings
from o2c_workers.dlq import Status
from o2c_workers.dlq.ops import requeue
from o2c_workers.receiver.replan import build_dlq
from tests.plugins.workers import wait_for


@pytest.mark.slow
def test_no_order_is_booked_until_salesforce_id_is_unique(o2c_factory, redis_url):
    o2c = o2c_factory(world_args={"accounts": 2, "opportunities": 2},
                      erp={"non_unique_salesforce_id": ("Sales Order",)})
    order_worker = o2c.workers[1]
    wait_for(lambda: "not set up for idempotent creates" in order_worker.log_tail(200),
             what="the start check to speak")
    [opp, _] = o2c.ok_opportunities()
    o2c.win([opp])
    store = o2c.dead_letters()
    [entry_id] = wait_for(lambda: store.ids(trace_key=opp), what="the dead letter")
    entry = store.get(entry_id)
    assert (entry.category, entry.task) == ("erp_configuration", "o2c.order.submit_order")
    assert "not unique on Sales Order" in entry.message
    assert entry.remediation.startswith("ERP admins: ")
    assert o2c.sales_orders_by_opportunity() == {}

    # The ERP admins make the field unique; ops requeue the transaction.
    cfg = o2c.sandbox.erp_config
    requests.put(f"{o2c.sandbox.erp_url}/api/resource/Custom Field/Sales Order-salesforce_id",
                 json={"unique": 1}, timeout=10,
                 headers={"Authorization": f"token {cfg.api_key}:{cfg.api_secret}"}
                 ).raise_for_status()
    report = requeue(build_dlq(load_settings(redis_url=redis_url), client=o2c.redis),
                     [entry_id])
    assert [done["id"] for done in report.done] == [entry_id]
    o2c.wait_written_back([opp])
    assert [len(found) for found in o2c.sales_orders_by_opportunity().values()] == [1]
    wait_for(lambda: store.get(entry_id).status is Status.RESOLVED, what="resolved")
