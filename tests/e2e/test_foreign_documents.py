"""ERP documents that did not come from Salesforce (an order keyed in the ERP by hand, an
invoice made from no order, and what the ERP makes of them) are acknowledged and left alone:
counted as ignored, on their timelines, never a dead letter, a warning or a Sentry event.
Through the ERP's real webhooks, the receiver and a real worker."""

from __future__ import annotations

import logging
from decimal import Decimal

import requests
from prometheus_client import REGISTRY

from o2c_workers import timeline
from o2c_workers.celery_app import DOMAINS
from o2c_workers.delivery.census import census
from tests.plugins.workers import wait_for


def ignored_count(domain: str, reason: str) -> float:
    return REGISTRY.get_sample_value("o2c_ignored_total",
                                     {"domain": domain, "reason": reason}) or 0.0


def deliveries(fleet) -> list[dict]:  # type: ignore[no-untyped-def]
    answer = requests.get(f"{fleet.sandbox.erp_url}/_sandbox/webhooks", timeout=10)
    answer.raise_for_status()
    return list(answer.json()["deliveries"])


def handled(fleet, count: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """Wait until the ERP has sent ``count`` events, each acknowledged, and the fleet is done."""
    def done() -> list[dict]:
        found = deliveries(fleet)
        ok = len(found) == count and all(d["delivered"] for d in found)
        return found if ok and census(fleet.redis, "o2c", DOMAINS).total == 0 else []
    return wait_for(done, timeout_s=30, what=f"{count} ERP events taken and handled")


def customer_by_hand(fleet) -> str:  # type: ignore[no-untyped-def]
    return str(fleet.erp("POST", "Customer", json={
        "customer_name": "Walk-in Trade Counter Ltd", "country": "United States",
        "default_currency": "USD"})["name"])


def lines(fleet) -> list[dict]:  # type: ignore[no-untyped-def]
    return [{"item_code": fleet.world.erp.items[0].code, "qty": 2}]


def test_documents_keyed_in_the_erp_are_acknowledged_counted_and_left_alone(
        fleet_in_process, caplog):
    caplog.set_level(logging.INFO)
    fleet = fleet_in_process(erp={"unpaid_ratio": 0, "partial_payment_ratio": 0})
    reasons = [(d, r) for d in ("order", "invoice", "payment")
               for r in ("no_salesforce_id", "no_sales_order")]
    before = {key: ignored_count(*key) for key in reasons}
    customer = customer_by_hand(fleet)
    order = fleet.erp("POST", "Sales Order", json={
        "customer": customer, "currency": "USD", "docstatus": 1, "po_no": "PO-7781",
        "items": lines(fleet)})
    # An invoice made from no order (ERPNext's direct invoice), which the ERP then pays.
    fleet.erp("POST", "Sales Invoice", json={"customer": customer, "currency": "USD",
                                             "docstatus": 1, "items": lines(fleet)})

    # The order: invoiced, billed, paid, completed; the direct invoice: submitted, paid.
    sent = handled(fleet, 6)
    moved = wait_for(lambda: (lambda m: m if sum(m.values()) == 6 else None)(
        {key: ignored_count(*key) - before[key] for key in reasons}), what="six ignored steps")
    assert moved == {("order", "no_salesforce_id"): 2, ("invoice", "no_salesforce_id"): 1,
                     ("payment", "no_salesforce_id"): 1, ("invoice", "no_sales_order"): 1,
                     ("payment", "no_sales_order"): 1,
                     ("order", "no_sales_order"): 0}

    assert fleet.dead_letters.ids(status=None) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    notes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ignored: ")]
    assert len(notes) == 6
    assert sum(f"Sales Order {order['name']} has no salesforce_id" in n for n in notes) == 4
    assert sum("was made from no sales order" in n for n in notes) == 2
    for d in sent:
        events = timeline.read(fleet.redis, "o2c", f"erp:{d['doctype']}:{d['name']}")
        assert [e["event"] for e in events][-1] == "ignored", d
    # Nothing of theirs was written to Salesforce.
    assert not [o for o in fleet.sf_records("Opportunity").values()
                if o.get("Invoice_Status__c") or o.get("ERP_Order_Status__c")]


def test_a_payment_of_ours_and_of_a_hand_keyed_invoice_updates_only_ours(
        fleet_in_process, caplog):
    caplog.set_level(logging.INFO)
    fleet = fleet_in_process(erp={"unpaid_ratio": 1})  # the ERP pays nothing on its own
    opportunity = fleet.ok_opportunity()
    fleet.win(opportunity)
    ours = wait_for(lambda: [d for d in fleet.documents("Sales Invoice")
                             if d.get("po_no") == opportunity], what="the ERP's invoice")[0]
    theirs = fleet.erp("POST", "Sales Invoice", json={
        "customer": ours["customer"], "currency": ours["currency"], "docstatus": 1,
        "items": lines(fleet)})
    total = Decimal(str(ours["grand_total"])) + Decimal(str(theirs["grand_total"]))
    fleet.erp("POST", "Payment Entry", json={
        "party": ours["customer"], "paid_amount": str(total), "docstatus": 1,
        "paid_from_account_currency": ours["currency"],
        "references": [{"reference_name": ours["name"],
                        "allocated_amount": str(ours["grand_total"])},
                       {"reference_name": theirs["name"],
                        "allocated_amount": str(theirs["grand_total"])}]})
    wait_for(lambda: fleet.sf_record("Opportunity", opportunity).get("Payment_Status__c")
             == "Paid", timeout_s=30, what="our opportunity marked paid")
    assert fleet.dead_letters.ids(status=None) == []
    assert any(f"left alone: invoice {theirs['name']} was made from no sales order"
               in r.getMessage() for r in caplog.records)
