"""The ERPNext adapter over an opportunity's life: every revision found, cancel idempotent,
amendments keyed and named, and no create while salesforce_id is not unique."""

from __future__ import annotations

import pytest

from o2c_workers import sfid
from o2c_workers.erp import revisions
from o2c_workers.errors import BusinessError, InvalidPayload
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


def booked(world, adapter, n: int = 0):
    order = order_of(world, good_opportunities(world)[n])
    customer = adapter.ensure_customer(customer_of(world, order.account_id))
    return order, customer, adapter.submit_sales_order(order, customer)


def test_revisions_are_found_in_order_and_cancel_is_safe_to_repeat(world, start_erp,
                                                                    make_adapter):
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    order, customer, first = booked(world, adapter)
    _, _, other = booked(world, adapter, 1)
    cancelled = adapter.cancel_sales_order(first.name)
    assert (cancelled.docstatus, cancelled.status, cancelled.cancelled) == (2, "Cancelled", True)
    # A second cancel (a retry after a lost answer) answers the cancelled order.
    assert adapter.cancel_sales_order(first.name).cancelled
    key = revisions.parse(first.salesforce_id).next().key
    amended = adapter.submit_sales_order(order, customer, key=key, amended_from=first.name)
    assert (amended.name, amended.amended_from, amended.salesforce_id) == (
        f"{first.name}-1", first.name, f"{order.opportunity_id}-1")
    assert amended.lines and amended.live and not amended.downstream
    found = adapter.find_sales_orders(order.opportunity_id)
    assert [(o.name, o.live) for o in found] == [(first.name, False), (amended.name, True)]
    assert found[1].lines == ()  # a list answer: read by name for the rows
    assert [o.name for o in adapter.find_sales_orders(other.salesforce_id[:15])] == [
        other.name]


def test_a_refused_cancel_is_the_erps_business_error(world, start_erp, make_adapter):
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    _, _, order = booked(world, adapter)
    sandbox(erp, f"orders/{order.name}/invoice", {})
    with pytest.raises(BusinessError, match="must be cancelled before cancelling"):
        adapter.cancel_sales_order(order.name)
    billed = adapter.get_sales_order(order.name)
    assert (billed.per_billed, billed.downstream, billed.live) == (100, True, True)


def test_nothing_is_created_where_salesforce_id_is_not_unique(world, start_erp, make_adapter):
    erp = start_erp(non_unique_salesforce_id=("Customer",))
    adapter = make_adapter(settings_for(erp))
    order = order_of(world, good_opportunities(world)[0])
    with pytest.raises(BusinessError, match="not unique on Customer") as caught:
        adapter.ensure_customer(customer_of(world, order.account_id))
    assert caught.value.category == "erp_configuration" and not caught.value.retryable
    assert api_calls(erp, "POST") == []
    # Asked again at each create until fixed; then trusted for a while.
    fixed = adapter.http.call("PUT", "/api/resource/Custom Field/Customer-salesforce_id",
                              body={"unique": 1})
    assert fixed["data"]["unique"] == 1
    adapter.ensure_customer(customer_of(world, order.account_id))
    before = len(api_calls(erp, "GET", "Custom Field"))
    booked(world, adapter, 1)
    assert len(api_calls(erp, "GET", "Custom Field")) == before


def test_a_key_that_is_not_an_opportunitys_is_refused():
    opp = sfid.to18("0065g00000AbCdE")
    assert revisions.parse(opp[:15]) == revisions.first(opp)
    assert revisions.parse(f"{opp}-2").next().key == f"{opp}-3"
    for bad in ("", "probe-1", f"{opp}-0", f"{opp}-x", f"{opp[:17]}Z"):
        with pytest.raises(InvalidPayload):
            revisions.parse(bad)
