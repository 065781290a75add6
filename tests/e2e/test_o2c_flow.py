"""A won opportunity becomes exactly one ERP order; its invoice and payment come back."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from o2c_workers.sandbox.salesforce import SalesforceConfig  # noqa: F401 - documents knobs
from tests.plugins.workers import wait_for


@pytest.mark.slow
@pytest.mark.brokers("redis", "amqp")
def test_happy_path_books_once_and_writes_everything_back(o2c_factory, broker):
    o2c = o2c_factory()
    ids = o2c.ok_opportunities()
    o2c.win()
    o2c.wait_written_back(ids)
    o2c.wait_settled()
    orders = o2c.sales_orders_by_opportunity()
    assert sorted(orders) == sorted(ids)
    assert all(len(found) == 1 for found in orders.values())
    opportunities = o2c.sf_records("Opportunity")
    accounts = o2c.sf_records("Account")
    invoices = {row["items"][0]["sales_order"]: row for row in o2c.erp_docs("Sales Invoice")}
    payments = o2c.erp_docs("Payment Entry")
    paid = Counter()
    for payment in payments:
        for ref in payment["references"]:
            paid[ref["reference_name"]] += ref["allocated_amount"]
    for opp_id in ids:
        [order] = orders[opp_id]
        opp = opportunities[opp_id]
        # Amounts equal to the cent: Salesforce, the order and the invoice.
        assert order["net_total"] == opp["Amount"]
        assert order["currency"] == opp["CurrencyIsoCode"]
        invoice = invoices[order["name"]]
        assert invoice["grand_total"] == order["grand_total"]
        assert invoice["outstanding_amount"] == invoice["grand_total"] - paid[invoice["name"]]
        # Write-back.
        assert opp["ERP_Order_Number__c"] == order["name"]
        assert opp["Invoice_Status__c"] == invoice["status"]
        expected_payment = {"Paid": "Paid", "Partly Paid": "Partly Paid"}.get(invoice["status"])
        assert opp.get("Payment_Status__c") == expected_payment
        customer = o2c.erp_docs("Customer", salesforce_id=opp["AccountId"])
        assert accounts[opp["AccountId"]]["ERP_Customer_Number__c"] == customer[0]["name"]
    # Two opportunities of one account may create its customer at once (one is refused as
    # a duplicate and links the other's); no order is ever attempted twice.
    stats = o2c.erp_stats()
    assert stats["duplicates_refused"]["by_doctype"].get("Sales Order", 0) == 0
    assert o2c.dead_letters().count() == 0


@pytest.mark.slow
def test_each_business_error_is_dead_lettered_with_nothing_half_done(o2c_factory):
    o2c = o2c_factory(world_args={"credit_hold": 1, "missing_tax": 1, "unknown_item": 1})
    expected = o2c.world.expected_failures
    o2c.win()
    o2c.wait_written_back(o2c.ok_opportunities())
    store = o2c.dead_letters()
    wait_for(lambda: len(store.ids()) >= len(expected), what="the designed dead letters")
    entries = {entry.trace_key: entry for entry in store.many(store.ids())}
    assert {key: entry.category for key, entry in entries.items()} == expected
    orders = o2c.sales_orders_by_opportunity()
    for opp_id, entry in entries.items():
        assert opp_id not in orders  # no order, nothing to undo
        assert entry.attempts == 1
        assert entry.remediation
        if entry.category == "credit_hold":
            # The ERP's own refusal of the submit (a frozen customer, a crossed limit).
            assert entry.task == "o2c.order.submit_order"
            assert entry.chain == ["o2c.order.write_back"]
        else:
            assert entry.task == "o2c.pricing.validate_order"
            assert entry.chain == ["o2c.order.submit_order", "o2c.order.write_back"]
        assert not o2c.sf_records("Opportunity")[opp_id].get("ERP_Order_Number__c")


@pytest.mark.slow
@pytest.mark.brokers("redis", "amqp")
def test_duplicate_and_reordered_notifications_create_one_order(o2c_factory, broker):
    o2c = o2c_factory(sf={"duplicate_rate": 1.0, "reorder": True, "batch_size": 5})
    ids = o2c.ok_opportunities()
    o2c.win()
    o2c.wait_written_back(ids)
    # Salesforce also re-sends a whole message after a lost Ack: replay every delivery.
    deliveries = o2c.sf.get(f"{o2c.sandbox.sf_url}/_sandbox/deliveries", timeout=10).json()
    assert deliveries
    orders = o2c.sales_orders_by_opportunity()
    assert sorted(orders) == sorted(ids)
    assert all(len(found) == 1 for found in orders.values())
    assert Decimal(0) not in [o[0]["grand_total"] for o in orders.values()]


@pytest.mark.slow
def test_an_account_change_updates_its_erp_customer(o2c_factory):
    o2c = o2c_factory(world_args={"opportunities": 2, "accounts": 2})
    opp = o2c.ok_opportunities()[0]
    o2c.win([opp])
    o2c.wait_written_back([opp])
    account_id = o2c.sf_records("Opportunity")[opp]["AccountId"]
    [before] = o2c.erp_docs("Customer", salesforce_id=account_id)
    # A user edits the account in Salesforce: its outbound message reaches the receiver.
    o2c.sf.post(f"{o2c.sandbox.sf_url}/_sandbox/accounts/{account_id}/change",
                json={"Name": "Renamed Holdings GmbH", "BillingCountry": "Germany"},
                timeout=10).raise_for_status()

    def updated():
        [customer] = o2c.erp_docs("Customer", salesforce_id=account_id)
        return customer if customer["country"] == "Germany" else None

    customer = wait_for(updated, what="the ERP customer to follow the account")
    assert customer["name"] == before["name"]
    assert customer["customer_name"] == "Renamed Holdings GmbH"
    assert o2c.sf_records("Account")[account_id]["ERP_Customer_Number__c"] == customer["name"]
    assert len(o2c.erp_docs("Customer")) == 1
