"""The ERPNext adapter's change feed (``changes_since``) against the ERP simulator: what it
finds and as which event, one list call a page, key paging that skips nothing when a
document changes while it pages, the site's time zone, and the simulator's datetime filters."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from o2c_workers.erp.changes import MASTERS, WATCHED
from o2c_workers.models import ChangeCursor, ErpChange
from tests.erp.support import (
    API_KEY,
    API_SECRET,
    api_calls,
    customer_of,
    good_opportunities,
    make_adapter,
    order_of,
    sandbox,
    settings_for,
    start_erp,
)
from tests.plugins.workers import wait_for

__all__ = ["make_adapter", "start_erp"]


def masters_since(adapter: Any, since: float) -> int:
    """How many master documents (items, prices, tax, customers) the feed found since."""
    cursor: ChangeCursor | None = ChangeCursor(since=since)
    saved = 0
    while cursor is not None:
        page = adapter.changes_since(cursor)
        saved += len(page.masters)
        cursor = page.next
    return saved


def all_changes(adapter: Any, since: float, page_size: int = 500,
                between: Any = None) -> tuple[list[ErpChange], int]:
    """Every change from ``since``, page after page, and the number of pages."""
    cursor: ChangeCursor | None = ChangeCursor(since=since, page_size=page_size)
    found: list[ErpChange] = []
    pages = 0
    while cursor is not None:
        page = adapter.changes_since(cursor)
        found.extend(page.changes)
        pages += 1
        if between is not None:
            between(pages)
        cursor = page.next
    return found, pages


def booked(world: Any, adapter: Any, count: int) -> list[Any]:
    orders = []
    for opportunity in good_opportunities(world)[:count]:
        order = order_of(world, opportunity)
        customer = adapter.ensure_customer(customer_of(world, order.account_id))
        orders.append(adapter.submit_sales_order(order, customer))
    return orders


def test_the_feed_finds_invoices_payments_and_order_status_changes_one_call_a_page(
        world, start_erp, make_adapter) -> None:
    erp = start_erp(payment_delay_s=0.05, unpaid_ratio=0, partial_payment_ratio=0)
    adapter = make_adapter(settings_for(erp))
    since = time.time() - 1
    invoiced = booked(world, adapter, 3)[:2]
    for order in invoiced:
        sandbox(erp, f"orders/{order.name}/invoice", {})
    wait_for(lambda: len(sandbox(erp, "documents/Payment Entry")["data"]) == 2, timeout_s=10,
             what="both invoices paid")
    untouched = adapter.find_sales_orders(good_opportunities(world)[2])[0]
    before = len(api_calls(erp, "GET"))

    found, pages = all_changes(adapter, since)
    assert pages == len(WATCHED), "one call per DocType when each fits a page"
    assert len(api_calls(erp, "GET")) - before == len(WATCHED)
    by_doc = {(c.doctype, c.name): c for c in found}
    assert len(by_doc) == len(found), "each document once, at its newest version"
    invoices = sandbox(erp, "documents/Sales Invoice")["data"]
    payments = sandbox(erp, "documents/Payment Entry")["data"]
    assert set(by_doc) == ({("Sales Invoice", i["name"]) for i in invoices}
                           | {("Payment Entry", p["name"]) for p in payments}
                           | {("Sales Order", o.name) for o in invoiced})
    # Submitted on creation and never changed: no status change to announce.
    assert ("Sales Order", untouched.name) not in by_doc
    for invoice in invoices:
        change = by_doc[("Sales Invoice", invoice["name"])]
        # Paid since it was submitted: a later version than its submit.
        assert (change.event, change.modified, change.po_no) == (
            "on_update_after_submit", invoice["modified"], invoice["po_no"])
    assert {by_doc[("Payment Entry", p["name"])].event for p in payments} == {"on_submit"}
    for order in invoiced:
        change = by_doc[("Sales Order", order.name)]
        assert (change.event, change.salesforce_id) == ("on_update_after_submit",
                                                         order.salesforce_id)
    assert all(abs(c.modified_at - time.time()) < 30 for c in found)
    stamps = [c.modified_at for c in found if c.doctype == "Sales Invoice"]
    assert stamps == sorted(stamps), "oldest first"

    # Paged one document at a time, the same changes, one call a page (and one more per
    # DocType to find its end).
    saved = masters_since(adapter, since)
    before = len(api_calls(erp, "GET"))
    single, pages = all_changes(adapter, since, page_size=1)
    assert sorted(single, key=repr) == sorted(found, key=repr)
    assert pages == len(invoices) + len(payments) + 3 + 3 + saved + len(MASTERS)
    assert len(api_calls(erp, "GET")) - before == pages

    # Nothing since now: one call per DocType, nothing found.
    nothing, pages = all_changes(adapter, time.time() + 1)
    assert (nothing, pages) == ([], len(WATCHED))


def test_a_document_changed_while_the_feed_pages_is_found_again_and_none_is_skipped(
        world, start_erp, make_adapter) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    since = time.time() - 1
    orders = booked(world, adapter, 4)
    for order in orders:
        sandbox(erp, f"orders/{order.name}/invoice", {})
    read: list[ErpChange] = []
    cursor: ChangeCursor | None = ChangeCursor(since=since, page_size=1)
    while cursor is not None:
        page = adapter.changes_since(cursor)
        read.extend(c for c in page.changes if c.doctype == "Sales Order")
        if len(read) == 1 and page.changes:
            # The oldest order is saved again right after it was read.
            sandbox(erp, f"orders/{read[0].name}/deliver", {})
        cursor = page.next
    names = [c.name for c in read]
    # Every order read; the one saved meanwhile once more, at its new version, last.
    assert sorted(set(names)) == sorted(o.name for o in orders)
    assert len(names) == 5 and names[-1] == names[0]
    assert read[-1].modified_at > max(c.modified_at for c in read[:-1])


def test_modified_is_read_in_the_sites_time_zone(world, start_erp, make_adapter) -> None:
    erp = start_erp(time_zone="America/New_York")
    since = time.time() - 1
    right = make_adapter(settings_for(erp, erp_time_zone="America/New_York"))
    [order] = booked(world, right, 1)
    sandbox(erp, f"orders/{order.name}/invoice", {})
    found, _ = all_changes(right, since)
    assert {c.doctype for c in found} == {"Sales Invoice", "Sales Order"}
    assert all(abs(c.modified_at - time.time()) < 30 for c in found)
    # Asked from now, in the site's zone, nothing: the filter went in its zone too.
    assert all_changes(right, time.time() + 1)[0] == []


def test_the_simulator_compares_modified_as_a_datetime_and_refuses_a_bad_one(
        start_erp) -> None:
    erp = start_erp()
    auth = {"Authorization": f"token {API_KEY}:{API_SECRET}"}

    def names(*filters: list[Any]) -> Any:
        answer = requests.get(f"{erp.url}/api/resource/Custom Field", headers=auth, timeout=5,
                              params={"filters": json.dumps(list(filters)),
                                      "limit_page_length": "0"})
        return answer.status_code, answer.json()

    status, every = names()
    assert status == 200 and every["data"]
    # The same instant written three ways; a date alone is its midnight.
    for stamp in ("2000-01-01 00:00:00", "2000-01-01T00:00:00.000000", "2000-01-01"):
        assert names(["modified", ">=", stamp]) == (200, every)
        assert names(["modified", "<", stamp]) == (200, {"data": []})
    assert names(["modified", "between", ["2000-01-01", "2999-01-01"]]) == (200, every)
    status, refused = names(["modified", ">=", "yesterday"])
    assert status == 417 and "Invalid datetime" in json.dumps(refused)
