"""The opportunity's life against the simulators: the order found for an opportunity is
compared in full, cancelled or closed is never success, the stage is read again before
booking, and a non-unique salesforce_id stops every create."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
import requests

from o2c_workers.chain import ChainContext
from o2c_workers.erp.unique import problems_of
from o2c_workers.errors import BusinessError
from o2c_workers.sandbox.erp import ErpConfig
from o2c_workers.services import customer, lifecycle, orders, pricing
from o2c_workers.services.orders import WriteBackFields
from tests.services.conftest import services_on
from tests.services.test_orders import submit
from tests.services.test_pricing import POLICY, good

#: No invoice or payment arrives on its own: the tests invoice and deliver when they mean to.
QUIET = {"invoice_delay_s": 3600.0, "payment_delay_s": 3600.0}


@pytest.fixture
def svc(sandbox_factory, redis_url, redis_client):
    return services_on(sandbox_factory(erp_config=ErpConfig(**QUIET)), redis_url, redis_client)


def priced(svc, opp: str):
    return pricing.validate_order(svc.won(opp), sf=svc.sf, erp=svc.erp,
                                  max_discount_percent=POLICY)


def cancel(svc, name: str) -> None:
    svc.erp.http.call("POST", "/api/method/frappe.client.cancel",
                      body={"doctype": "Sales Order", "name": name})


def sales_orders(svc, opp: str) -> list[dict]:
    rows = svc.erp.http.call("GET", "/api/resource/Sales Order", params={
        "fields": '["name", "salesforce_id", "docstatus", "status", "amended_from"]',
        "limit_page_length": "0", "order_by": "creation asc"})["data"]
    return [row for row in rows if row["salesforce_id"].startswith(opp)]


def live(svc, opp: str) -> list[str]:
    return [row["name"] for row in sales_orders(svc, opp)
            if row["docstatus"] == 1 and row["status"] != "Closed"]


def set_line(svc, opp: str, **values) -> None:
    [line, *_] = svc.sf.get_line_items(opp)
    svc.sf.update("OpportunityLineItem", line["Id"], values)


def test_a_cancelled_order_is_never_linked(svc):
    opp = good(svc)
    ctx = priced(svc, opp)
    first = submit(svc, ctx).need_erp_order()
    cancel(svc, first.name)
    again = submit(svc, priced(svc, opp)).need_erp_order()
    assert again.docstatus == 1 and again.name != first.name
    assert live(svc, opp) == [again.name]


def test_an_opportunity_no_longer_won_is_skipped_before_anything_is_booked(svc):
    """The pricing step prices the first step's read of the opportunity only while it is
    younger than ``REPRICE_AFTER_S``; older (a redelivery, a requeue, a long queue), it
    reads again, and an opportunity lost since is skipped. (Lost after a read still in
    date: the loss's own step, or the order step after its note, cancels what was booked,
    below.)"""
    opp = good(svc)
    ctx = svc.won(opp)
    svc.sf.update("Opportunity", opp, {"StageName": "Closed Lost"})
    read = ctx.opportunity
    assert read is not None and read.opportunity["StageName"] == "Closed Won"
    stale = ctx.model_copy(update={"opportunity": read.model_copy(
        update={"read_at": time.time() - pricing.REPRICE_AFTER_S - 1})})
    result = pricing.validate_order(stale, sf=svc.sf, erp=svc.erp,
                                    max_discount_percent=POLICY)
    assert not isinstance(result, ChainContext), "priced for booking, though Closed Lost"
    assert result.stage == "Closed Lost"
    assert sales_orders(svc, opp) == []
    # Without the first step's read (a message from before it), the same.
    bare = ctx.model_copy(update={"opportunity": None})
    assert pricing.validate_order(bare, sf=svc.sf, erp=svc.erp,
                                  max_discount_percent=POLICY) == pricing.Skipped("Closed Lost")


def test_an_opportunity_lost_before_the_first_step_creates_no_erp_customer(svc):
    """A won notification arrives late (or is requeued) after the opportunity was lost:
    the first step reads the stage with everything else and writes nothing to the ERP."""
    opp = good(svc)
    svc.sf.update("Opportunity", opp, {"StageName": "Closed Lost"})
    account = svc.sf.get_opportunity(opp)["AccountId"]
    before = svc.erp.http.call("GET", "/api/resource/Customer", params={
        "fields": '["name"]', "limit_page_length": "0"})["data"]
    result = customer.ensure_customer(ChainContext(trace_key=opp), sf=svc.sf, erp=svc.erp)
    assert result == pricing.Skipped("Closed Lost")
    after = svc.erp.http.call("GET", "/api/resource/Customer", params={
        "fields": '["name"]', "limit_page_length": "0"})["data"]
    assert after == before
    assert svc.erp.find_customer(account) is None
    assert sales_orders(svc, opp) == []


def test_changed_lines_with_the_same_total_are_not_linked(svc):
    opp = good(svc)
    set_line(svc, opp, Quantity=20, Discount=5)
    first = submit(svc, priced(svc, opp)).need_erp_order()
    # 25 seats at 24% off cost what 20 seats at 5% off did.
    set_line(svc, opp, Quantity=25, Discount=24)
    ctx = priced(svc, opp)
    assert ctx.need_order().net_total == first.net_total
    again = submit(svc, ctx).need_erp_order()
    assert again.name != first.name
    assert live(svc, opp) == [again.name]
    assert Decimal(25) in [line.qty for line in again.lines]


def test_a_salesforce_id_that_is_not_unique_refuses_every_create(sandbox_factory, redis_url,
                                                                 redis_client):
    svc = services_on(sandbox_factory(erp_config=ErpConfig(
        non_unique_salesforce_id=("Sales Order",), **QUIET)), redis_url, redis_client)
    opp = good(svc)
    ctx = priced(svc, opp)
    with pytest.raises(BusinessError) as caught:
        submit(svc, ctx)
    assert caught.value.category == "erp_configuration"
    assert sales_orders(svc, opp) == []


def erp_sandbox(svc, route: str) -> dict:
    answer = requests.post(f"{svc.sandbox.erp_url}/_sandbox/{route}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def test_an_amendment_cancels_the_order_and_follows_it_by_name_and_key(svc):
    opp = good(svc)
    set_line(svc, opp, Quantity=20, Discount=5)
    first = submit(svc, priced(svc, opp)).need_erp_order()
    set_line(svc, opp, Quantity=25, Discount=24)
    booked = orders.submit_order(priced(svc, opp), erp=svc.erp, reprice=reprice(svc))
    assert isinstance(booked, orders.Booked)
    assert (booked.action, booked.amended_from) == ("amended", first.name)
    assert (booked.order.name, booked.order.salesforce_id) == (f"{first.name}-1", f"{opp}-1")
    assert [(row["name"], row["status"]) for row in sales_orders(svc, opp)] == [
        (first.name, "Cancelled"), (f"{first.name}-1", "To Deliver and Bill")]
    # The same content again links the amendment.
    again = orders.submit_order(priced(svc, opp), erp=svc.erp, reprice=reprice(svc))
    assert isinstance(again, orders.Booked)
    assert (again.action, again.order.name) == ("linked", f"{first.name}-1")


def test_a_changed_order_that_is_invoiced_or_delivered_is_left_and_named(svc):
    invoiced, delivered = good_ones(svc, 2)
    for opp, action in ((invoiced, "invoice"), (delivered, "deliver")):
        set_line(svc, opp, Quantity=20, Discount=5)
        booked = submit(svc, priced(svc, opp)).need_erp_order()
        erp_sandbox(svc, f"orders/{booked.name}/{action}")
        set_line(svc, opp, Quantity=25, Discount=24)
        with pytest.raises(BusinessError) as caught:
            submit(svc, priced(svc, opp))
        assert caught.value.category == "amendment_required"
        message = caught.value.message
        assert f"{booked.name} is {'100% billed' if action == 'invoice' else '0% billed'}" \
            in message
        assert "line 1 (" in message and "quantity 20 → 25" in message
        assert "discount 5.00% → 24.00%" in message
        assert live(svc, opp) == [booked.name]


def test_cancelled_in_the_erp_then_won_again_is_booked_once_by_concurrent_steps(svc):
    opp = good(svc)
    first = submit(svc, priced(svc, opp)).need_erp_order()
    cancel(svc, first.name)
    ctx = priced(svc, opp)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(orders.submit_order(
        ctx, erp=svc.erp, reprice=reprice(svc)))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len({r.order.name for r in results}) == 1 and len(results) == 3
    assert {r.action for r in results} <= {"rebooked", "linked"}
    assert live(svc, opp) == [f"{first.name}-1"]
    assert results[0].order.amended_from == first.name


def test_a_closed_order_or_two_live_ones_are_for_people(svc):
    closed, doubled = good_ones(svc, 2)
    order = submit(svc, priced(svc, closed)).need_erp_order()
    svc.erp.http.call("POST", f"/api/method/{UPDATE_STATUS}",
                      body={"status": "Closed", "name": order.name})
    with pytest.raises(BusinessError, match=f"{order.name} is Closed") as caught:
        submit(svc, priced(svc, closed))
    assert caught.value.category == "reconciliation"
    ctx = priced(svc, doubled)
    submit(svc, ctx)
    # Someone books a second live order by hand, with the next revision key.
    svc.erp.submit_sales_order(ctx.need_order(), ctx.need_customer(), key=f"{doubled}-1")
    with pytest.raises(BusinessError, match="2 live ERP orders") as caught:
        submit(svc, priced(svc, doubled))
    assert len(live(svc, doubled)) == 2


def test_a_stale_pricing_is_read_again_and_a_lost_opportunity_skipped(svc):
    opp = good(svc)
    ctx = priced(svc, opp)
    svc.sf.update("Opportunity", opp, {"StageName": "Closed Lost"})
    # A requeue days later: the stage is read again before anything is booked.
    later = time.time() + orders.REPRICE_AFTER_S + 1
    result = orders.submit_order(ctx, erp=svc.erp, reprice=reprice(svc), now=later)
    assert result == pricing.Skipped("Closed Lost")
    assert sales_orders(svc, opp) == []


def test_status_events_write_the_opportunitys_current_order(svc):
    opp = good(svc)
    set_line(svc, opp, Quantity=20, Discount=5)
    first = submit(svc, priced(svc, opp)).need_erp_order()
    set_line(svc, opp, Quantity=25, Discount=24)
    amended = submit(svc, priced(svc, opp)).need_erp_order()
    # The cancelled predecessor's event comes late: the amendment stays on the opportunity.
    current = orders.sync_status(first.name, out=svc.out, erp=svc.erp, fields=FIELDS)
    assert current.name == amended.name
    record = svc.sf.get_opportunity(opp)
    assert (record[FIELDS.order_number], record[FIELDS.order_status]) == (
        amended.name, "To Deliver and Bill")


def test_lost_after_booking_cancels_the_order_and_writes_the_status_back(svc):
    opp = good(svc)
    booked = submit(svc, priced(svc, opp)).need_erp_order()
    svc.sf.update("Opportunity", opp, {"StageName": "Closed Lost"})
    done = follow(svc, opp)
    assert (done.action, done.stage, done.order.name) == ("cancelled", "Closed Lost",
                                                          booked.name)
    assert live(svc, opp) == []
    record = svc.sf.get_opportunity(opp)
    assert (record[FIELDS.order_number], record[FIELDS.order_status]) == (
        booked.name, "Cancelled")
    # Told again (a duplicate, a requeue): nothing left to cancel.
    assert follow(svc, opp).action == "no_order"


def test_lost_after_invoice_or_delivery_leaves_the_order_for_finance(svc):
    invoiced, delivered = good_ones(svc, 2)
    for opp, action in ((invoiced, "invoice"), (delivered, "deliver")):
        booked = submit(svc, priced(svc, opp)).need_erp_order()
        erp_sandbox(svc, f"orders/{booked.name}/{action}")
        svc.sf.update("Opportunity", opp, {"StageName": "Negotiation/Review"})
        with pytest.raises(BusinessError) as caught:
            follow(svc, opp)
        assert caught.value.category == "cancellation_after_invoice"
        assert booked.name in caught.value.message
        assert caught.value.remediation.startswith("Finance: ")
        assert live(svc, opp) == [booked.name]


def test_a_won_opportunity_or_a_switched_off_compensation_cancels_nothing(svc):
    won, kept = good_ones(svc, 2)
    for opp in (won, kept):
        submit(svc, priced(svc, opp))
    assert follow(svc, won).action == "still_won"
    svc.sf.update("Opportunity", kept, {"StageName": "Closed Lost"})
    assert follow(svc, kept, cancel_on_lost=False).action == "kept"
    assert len(live(svc, won)) == len(live(svc, kept)) == 1


def test_once_the_erp_admins_make_it_unique_the_order_is_booked(sandbox_factory, redis_url,
                                                                redis_client):
    svc = services_on(sandbox_factory(erp_config=ErpConfig(
        non_unique_salesforce_id=("Sales Order",), **QUIET)), redis_url, redis_client)
    opp = good(svc)
    ctx = priced(svc, opp)
    # The customer was created: its own field is unique.
    assert ctx.need_customer().name
    with pytest.raises(BusinessError, match="not unique on Sales Order") as caught:
        submit(svc, ctx)
    assert caught.value.remediation.startswith("ERP admins: ")
    svc.erp.http.call("PUT", "/api/resource/Custom Field/Sales Order-salesforce_id",
                      body={"unique": 1})
    assert submit(svc, ctx).need_erp_order().live


def test_a_missing_custom_field_is_a_problem_too():
    rows = [{"dt": "Customer", "name": "Customer-salesforce_id", "unique": 1}]
    assert problems_of(rows, ("Customer", "Sales Order")) == {
        "Sales Order": "Sales Order has no salesforce_id Custom Field"}


FIELDS = WriteBackFields()
UPDATE_STATUS = "erpnext.selling.doctype.sales_order.sales_order.update_status"


def reprice(svc):
    return lambda ctx: pricing.validate_order(ctx, sf=svc.sf, erp=svc.erp,
                                              max_discount_percent=POLICY)


def follow(svc, opp: str, *, cancel_on_lost: bool = True):
    return lifecycle.follow_opportunity(opp, sf=svc.sf, out=svc.out, erp=svc.erp,
                                        left=svc.left, fields=FIELDS,
                                        cancel_on_lost=cancel_on_lost)


def good_ones(svc, n: int) -> list[str]:
    world = svc.sandbox.world
    return [o for o in world.opportunity_ids if o not in world.expected_failures][:n]


def book(svc, ctx):
    return lifecycle.book(ctx, sf=svc.sf, out=svc.out, erp=svc.erp, left=svc.left,
                          reprice=reprice(svc),
                          fields=FIELDS, cancel_on_lost=True)


def test_lost_while_its_order_is_booked_leaves_no_live_order(svc):
    """Lost after its pricing, and its message's step ran before the order existed (or
    before a redelivered order step): that step noted the loss, so the order step reads the
    stage once more and cancels what it booked; the same order step once finance invoiced
    it files finance's case."""
    lost, invoiced = good_ones(svc, 2)
    ctx = priced(svc, lost)
    svc.sf.update("Opportunity", lost, {"StageName": "Closed Lost"})
    assert follow(svc, lost).action == "no_order"
    done = book(svc, ctx)
    assert isinstance(done, lifecycle.Followed)
    assert (done.action, done.stage) == ("cancelled", "Closed Lost")
    assert live(svc, lost) == []
    record = svc.sf.get_opportunity(lost)
    assert (record[FIELDS.order_number], record[FIELDS.order_status]) == (
        done.order.name, "Cancelled")
    # Redelivered: nothing live to link, the stage is read again before booking anew.
    assert book(svc, ctx) == pricing.Skipped("Closed Lost")
    ctx = priced(svc, invoiced)
    booked = book(svc, ctx)
    assert isinstance(booked, orders.Booked) and booked.action == "created"
    erp_sandbox(svc, f"orders/{booked.order.name}/invoice")
    svc.sf.update("Opportunity", invoiced, {"StageName": "Negotiation/Review"})
    # The re-opening's own step files finance's case (and notes it); a redelivered order
    # step, seeing the note, reads the stage and files the same.
    for step in (lambda: follow(svc, invoiced), lambda: book(svc, ctx)):
        with pytest.raises(BusinessError) as caught:
            step()
        assert caught.value.category == "cancellation_after_invoice"
    assert live(svc, invoiced) == [booked.order.name]


def test_still_won_once_booked_the_order_step_books_as_before(svc):
    opp = good(svc)
    booked = book(svc, priced(svc, opp))
    assert isinstance(booked, orders.Booked) and booked.action == "created"
    again = book(svc, priced(svc, opp))
    assert isinstance(again, orders.Booked)
    assert (again.action, again.order.name) == ("linked", booked.order.name)


def test_a_cancel_answered_after_the_opportunity_was_won_again_writes_back_its_amendment(svc):
    """Lost, its follow step cancels the order but the answer is lost; meanwhile the
    opportunity is won again and its amendment booked and written back. The step's retry
    finds the order cancelled already and must not write it over the amendment."""
    opp = good(svc)
    first = submit(svc, priced(svc, opp)).need_erp_order()
    svc.sf.update("Opportunity", opp, {"StageName": "Closed Lost"})
    faults = f"{svc.sandbox.erp_url}/_sandbox/faults"
    requests.post(faults, json={"timeout_after_commit_rate": 1.0, "timeout_hang_s": 5.0},
                  timeout=10).raise_for_status()
    done: list[lifecycle.Followed] = []
    step = threading.Thread(target=lambda: done.append(follow(svc, opp)))
    step.start()
    deadline = time.monotonic() + 10
    while live(svc, opp) and time.monotonic() < deadline:
        time.sleep(0.05)
    requests.post(faults, json={"timeout_after_commit_rate": 0.0}, timeout=10)
    assert live(svc, opp) == [], "the cancel was committed while its answer hangs"
    set_line(svc, opp, Quantity=7)
    amended = submit(svc, priced(svc, opp))
    orders.write_back(amended, out=svc.out, fields=FIELDS)
    assert step.is_alive(), "the amendment was booked while the cancel's answer hung"
    step.join(timeout=60)
    assert done[0].action == "cancelled" and done[0].order.name == first.name
    record = svc.sf.get_opportunity(opp)
    assert (record[FIELDS.order_number], record[FIELDS.order_status]) == (
        amended.need_erp_order().name, "To Deliver and Bill")


def test_a_redelivered_order_step_priced_before_an_edit_never_replaces_the_newer_order(svc):
    """The first chain's order step, priced at 2 seats, is redelivered (its worker was
    killed) after the opportunity was lost, edited to 3 seats and won again, and after the
    newer chain booked the 3 seats. Its pricing is seconds old, not stale: it must read the
    opportunity again before replacing the newer order, and link it."""
    opp = good(svc)
    set_line(svc, opp, Quantity=2)
    stale = priced(svc, opp)
    set_line(svc, opp, Quantity=3)
    newer = submit(svc, priced(svc, opp)).need_erp_order()
    late = orders.submit_order(stale, erp=svc.erp, reprice=reprice(svc))
    assert isinstance(late, orders.Booked)
    assert (late.action, late.order.name) == ("linked", newer.name)
    assert live(svc, opp) == [newer.name]
    assert late.order.lines[0].qty == Decimal(3)
