"""Booking and write-back against the simulators: idempotent, and reconciled to the cent."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from o2c_workers.errors import BusinessError
from o2c_workers.services import orders, pricing
from o2c_workers.services.orders import WriteBackFields
from tests.services.test_pricing import POLICY, good


def priced(services, opp: str):
    return pricing.validate_order(services.won(opp), sf=services.sf, erp=services.erp,
                                  max_discount_percent=POLICY)


def submit(services, ctx):
    """``submit_order`` as the task calls it; the booked chain."""
    booked = orders.submit_order(ctx, erp=services.erp, reprice=lambda c: pricing.validate_order(
        c, sf=services.sf, erp=services.erp, max_discount_percent=POLICY))
    assert isinstance(booked, orders.Booked)
    return booked.ctx


def erp_orders(services, opp: str) -> list[dict]:
    return [o for o in services.erp.http.call("GET", "/api/resource/Sales Order", params={
        "fields": '["name", "salesforce_id"]', "limit_page_length": "0"})["data"]
        if o["salesforce_id"] == opp]


def test_submitting_twice_books_one_order(services):
    opp = good(services)
    ctx = priced(services, opp)
    first = submit(services, ctx).need_erp_order()
    again = submit(services, ctx).need_erp_order()
    assert first.name == again.name
    assert len(erp_orders(services, opp)) == 1
    assert first.net_total == ctx.need_order().net_total


def test_an_invoiced_order_that_differs_is_never_linked_nor_changed(services):
    opp = good(services)
    ctx = priced(services, opp)
    booked = submit(services, ctx).need_erp_order()
    requests.post(f"{services.sandbox.erp_url}/_sandbox/orders/{booked.name}/invoice",
                  timeout=10).raise_for_status()
    order = ctx.need_order()
    line = order.lines[0]
    bigger = order.model_copy(update={
        "lines": [line.model_copy(update={"quantity": line.quantity + 1}), *order.lines[1:]],
        "amount": order.amount + line.unit_price})
    with pytest.raises(BusinessError) as caught:
        submit(services, ctx.model_copy(update={"order": bigger}))
    assert caught.value.category == "amendment_required"
    assert f"line 1 ({line.item_code}): quantity {line.quantity.normalize():f} → " in \
        caught.value.message
    assert caught.value.remediation.startswith("Finance: ")
    assert len(erp_orders(services, opp)) == 1


def test_write_back_sets_the_order_and_customer_numbers(services):
    opp = good(services)
    booked = submit(services, priced(services, opp))
    fields = WriteBackFields()
    orders.write_back(booked, out=services.out, fields=fields)
    record = services.sf.get_opportunity(opp)
    erp_order = booked.need_erp_order()
    assert record[fields.order_number] == erp_order.name
    assert record[fields.order_status] == erp_order.status
    account = services.sf.get_account(booked.need_customer().salesforce_id)
    assert account[fields.customer_number] == booked.need_customer().name
    assert isinstance(erp_order.grand_total, Decimal)


@pytest.mark.parametrize("limit", [None, Decimal("10.00")], ids=["frozen", "credit_limit"])
def test_a_credit_hold_is_the_erps_refusal_on_submit(services, limit):
    """Pricing no longer asks for the customer's credit: the ERP refuses the order itself,
    as clearly (``PartyFrozen``, "Credit limit has been crossed"), filed ``credit_hold``
    with Finance's hint, and nothing is booked."""
    world = services.sandbox.world
    if limit is None:
        opp = next(o for o, why in world.expected_failures.items() if why == "credit_hold")
    else:
        opp = good(services)
        customer = services.won(opp).need_customer()
        services.erp.http.call("PUT", f"/api/resource/Customer/{customer.name}", body={
            "credit_limits": [{"company": world.erp.company, "credit_limit": str(limit)}]})
    before = len(erp_calls(services))
    ctx = priced(services, opp)
    asked = [c["path"] for c in erp_calls(services)[before:]]
    assert not [p for p in asked if "outstanding" in p or "/Customer/" in p], asked
    with pytest.raises(BusinessError) as caught:
        submit(services, ctx)
    assert caught.value.category == "credit_hold" and not caught.value.retryable
    assert caught.value.remediation.startswith("Finance:")
    assert ("is frozen" if limit is None else "Credit limit has been crossed") \
        in caught.value.message
    assert erp_orders(services, opp) == []


def erp_calls(services) -> list[dict]:
    answer = requests.get(f"{services.sandbox.erp_url}/_sandbox/calls", timeout=10)
    return answer.json()["calls"]
