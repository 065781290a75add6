"""Resolution by step, through a real worker on the sandbox: a success resolves only the older
dead letters of its own step and trace key (promise 10), whatever the domain."""

from __future__ import annotations

import time

import pytest

from o2c_workers.dlq import DeadLetter, Status
from tests.plugins.workers import wait_for

SYNC_INVOICE = "o2c.invoice.sync_invoice"
WRITE_BACK = "o2c.order.write_back"


@pytest.mark.parametrize("broker", ["redis", pytest.param("amqp", marks=pytest.mark.slow)])
def test_each_step_resolves_its_own_older_dead_letters_and_no_one_elses(fleet_in_process,
                                                                         broker, request):
    amqp_url = request.getfixturevalue("fresh_amqp_url") if broker == "amqp" else None
    fleet = fleet_in_process(webhooks=False, broker_url=amqp_url)
    store = fleet.dead_letters
    opportunity = fleet.ok_opportunity()
    now = time.time()

    def filed(task: str, category: str, at: float) -> str:
        entry = DeadLetter(trace_key=opportunity, domain=task.split(".")[1], task=task,
                           args=[{"name": "ACC-SINV-2026-00099"}], error_class="BusinessError",
                           category=category, message="an earlier failure",
                           first_failed_at=at, last_failed_at=at)
        return store.add(entry).id

    invoice_old = filed(SYNC_INVOICE, "reconciliation", now - 60)
    # Stands for one filed after the invoice's success started: its score is later.
    invoice_newer = filed(SYNC_INVOICE, "reconciliation", now + 3600)
    write_back_old = filed(WRITE_BACK, "exhausted", now - 60)

    fleet.win(opportunity)
    wait_for(lambda: store.get(write_back_old).status is Status.RESOLVED, timeout_s=30,
             what="the write-back's own dead letter resolved")
    # Resolved once the write-back is accepted; the outbox sends it about O2C_SF_FLUSH_S later.
    wait_for(lambda: fleet.sf_record("Opportunity", opportunity).get("ERP_Order_Number__c"),
             timeout_s=10, what="the write-back in Salesforce")
    # Finance's invoice reconciliation error is not the write-back's to resolve.
    assert store.get(invoice_old).status is Status.OPEN
    assert store.get(invoice_newer).status is Status.OPEN

    [invoice] = wait_for(lambda: [d for d in fleet.documents("Sales Invoice")
                                  if d.get("po_no") == opportunity], what="the ERP's invoice")
    assert fleet.post_erp_event("on_submit", invoice)["trace_key"] == opportunity
    wait_for(lambda: store.get(invoice_old).status is Status.RESOLVED, timeout_s=30,
             what="the invoice's own older dead letter resolved by its success")
    assert store.get(invoice_newer).status is Status.OPEN
    by_invoice, by_write_back = store.get(invoice_old), store.get(write_back_old)
    assert by_invoice.resolved_by and by_write_back.resolved_by
    assert by_invoice.resolved_by != by_write_back.resolved_by
