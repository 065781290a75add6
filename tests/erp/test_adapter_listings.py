"""The ERPNext adapter's listings for ``o2c reconcile``: orders modified since a time, page
by page; every revision of many opportunities and their invoices in few calls; the payments
of an invoice."""

from __future__ import annotations

import time

from o2c_workers.erp import revisions
from tests.erp.support import (
    api_calls,
    customer_of,
    good_opportunities,
    make_adapter,
    order_of,
    sandbox,
    settings_for,
    start_erp,
)

__all__ = ["make_adapter", "start_erp"]


def test_listings_page_by_page_and_by_many_opportunities(world, start_erp, make_adapter):
    erp = start_erp(payment_delay_s=0.1, unpaid_ratio=0.0, partial_payment_ratio=0.0)
    adapter = make_adapter(settings_for(erp))
    before = time.time() - 1
    ids = good_opportunities(world)[:3]
    booked = []
    for opportunity_id in ids:
        order = order_of(world, opportunity_id)
        booked.append(adapter.submit_sales_order(
            order, adapter.ensure_customer(customer_of(world, order.account_id))))
    first = booked[0]
    adapter.cancel_sales_order(first.name)
    amended = adapter.submit_sales_order(
        order_of(world, ids[0]), adapter.ensure_customer(customer_of(
            world, order_of(world, ids[0]).account_id)),
        key=revisions.parse(first.salesforce_id).next().key, amended_from=first.name)

    lists = len(api_calls(erp, "GET", "Sales Order"))
    pages = list(adapter.sales_orders_modified_since(before, page_length=2))
    assert [len(p) for p in pages] == [2, 2]
    assert sorted(o.name for p in pages for o in p) == sorted(
        [first.name, amended.name, *(o.name for o in booked[1:])])
    # One call a page, and one more to find that a full page was the last.
    assert len(api_calls(erp, "GET", "Sales Order")) - lists == 3
    assert list(adapter.sales_orders_modified_since(time.time() + 60)) == []

    lists = len(api_calls(erp, "GET", "Sales Order"))
    found = adapter.sales_orders_of_many([ids[0][:15], ids[1], ids[2]])
    assert sorted(o.name for o in found) == sorted(
        [first.name, amended.name, booked[1].name, booked[2].name])
    assert len(api_calls(erp, "GET", "Sales Order")) - lists == 1

    sandbox(erp, f"orders/{booked[1].name}/invoice", {})
    [invoice] = adapter.sales_invoices_of_many(ids)
    assert invoice.opportunity_id == ids[1] and invoice.docstatus == 1
    assert invoice.grand_total == adapter.get_sales_order(booked[1].name).grand_total
    deadline = time.time() + 10
    while not adapter.payment_entries_of(invoice) and time.time() < deadline:
        time.sleep(0.1)
    [payment] = adapter.payment_entries_of(invoice)
    assert payment.allocations == {invoice.name: invoice.grand_total}


def test_orders_modified_since_are_asked_in_the_sites_time_zone(world, start_erp, make_adapter):
    erp = start_erp(time_zone="America/New_York")
    adapter = make_adapter(settings_for(erp, erp_time_zone="America/New_York"))
    before = time.time() - 1
    order = order_of(world, good_opportunities(world)[0])
    adapter.submit_sales_order(order, adapter.ensure_customer(customer_of(world, order.account_id)))
    [[found]] = list(adapter.sales_orders_modified_since(before))
    assert found.salesforce_id == order.opportunity_id
    # From just after now in the site's zone, nothing: in UTC it would still find the order.
    assert list(adapter.sales_orders_modified_since(time.time() + 1)) == []
