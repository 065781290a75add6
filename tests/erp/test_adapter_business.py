"""Business refusals reach the caller once, categorized, with the team that fixes them; and
the status → error table for answers the simulator does not give."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from o2c_workers.catalogue import remediation
from o2c_workers.erp.http import map_error, retry_after_s
from o2c_workers.errors import (
    AuthError,
    BusinessError,
    Duplicate,
    NotFound,
    Throttled,
    Transient,
    UnknownOutcome,
)
from o2c_workers.models import OrderLine
from o2c_workers.sandbox.world import CREDIT_HOLD, TAX_CONFIGURATION, UNKNOWN_ITEM, World
from tests.erp.support import (
    api_calls,
    customer_of,
    failing,
    good_opportunities,
    make_adapter,
    order_of,
    sandbox,
    settings_for,
    start_erp,
)

__all__ = ["make_adapter", "start_erp"]

TEAMS = {"credit_hold": "Finance", "tax_configuration": "Finance / master data",
         "unknown_item": "Master data", "price_mismatch": "Sales ops",
         "erp_validation": "Integration team"}


@pytest.mark.parametrize("category", [CREDIT_HOLD, TAX_CONFIGURATION, UNKNOWN_ITEM])
def test_the_seeded_failures_are_categorized(world: World, start_erp, make_adapter,
                                             category: str) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    order = order_of(world, failing(world, category))
    customer = adapter.ensure_customer(customer_of(world, order.account_id))
    assert adapter.credit_status(customer).frozen is (category == CREDIT_HOLD)
    with pytest.raises(BusinessError) as caught:
        adapter.submit_sales_order(order, customer)
    _assert_refusal(caught.value, category)
    assert len(api_calls(erp, "POST", "Sales Order")) == 1
    assert sandbox(erp, "stats")["documents_created"].get("Sales Order", 0) == 0


def test_a_price_that_differs_from_the_price_list_is_a_mismatch(world: World, start_erp,
                                                                 make_adapter) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    order = order_of(world, good_opportunities(world)[0])
    line = order.lines[0]
    # The Salesforce price book is a unit dearer than the ERP price list.
    dearer = line.model_copy(update={"unit_price": line.unit_price + 1,
                                     "list_price": line.list_price + 1})
    order = order.model_copy(update={"lines": [dearer, *order.lines[1:]]})
    customer = adapter.ensure_customer(customer_of(world, order.account_id))
    with pytest.raises(BusinessError) as caught:
        adapter.submit_sales_order(order, customer)
    _assert_refusal(caught.value, "price_mismatch")
    assert "Price mismatch in Row #1" in caught.value.message


def test_a_crossed_credit_limit_is_a_credit_hold(world: World, start_erp, make_adapter) -> None:
    order = order_of(world, good_opportunities(world)[0])
    world.erp.credit_limits[order.account_id] = Decimal("10.00")
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    customer = adapter.ensure_customer(customer_of(world, order.account_id))
    assert adapter.credit_status(customer).limit == Decimal("10.00")
    with pytest.raises(BusinessError) as caught:
        adapter.submit_sales_order(order, customer)
    _assert_refusal(caught.value, "credit_hold")
    assert "Credit limit has been crossed" in caught.value.message


def test_other_validation_errors_go_to_the_integration_team(world: World, start_erp,
                                                            make_adapter) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    order = order_of(world, good_opportunities(world)[0])
    empty = OrderLine(**{**order.lines[0].model_dump(), "quantity": Decimal(0)})
    order = order.model_copy(update={"lines": [empty]})
    customer = adapter.ensure_customer(customer_of(world, order.account_id))
    with pytest.raises(BusinessError) as caught:
        adapter.submit_sales_order(order, customer)
    _assert_refusal(caught.value, "erp_validation")
    assert "Quantity must be greater than zero" in caught.value.message


def _assert_refusal(error: BusinessError, category: str) -> None:
    assert (error.category, error.status, error.retryable) == (category, 417, False)
    assert error.remediation == remediation(category)
    assert error.remediation.startswith(TEAMS[category])


def _frappe(exc_type: str, message: str) -> dict[str, str]:
    inner = json.dumps({"message": f"<b>{message}</b>", "indicator": "red"})
    return {"exc_type": exc_type, "exception": f"frappe.exceptions.{exc_type}: {message}",
            "_server_messages": json.dumps([inner])}


@pytest.mark.parametrize(("method", "status", "body", "expected"), [
    ("POST", 417, _frappe("UniqueValidationError", "Salesforce ID must be unique"), Duplicate),
    ("POST", 409, _frappe("DuplicateEntryError", "exists"), Duplicate),
    ("POST", 417, _frappe("QueryDeadlockError", "Deadlock found"), Throttled),
    ("GET", 403, _frappe("PermissionError", "Not permitted"), AuthError),
    ("GET", 404, _frappe("DoesNotExistError", "Sales Order X not found"), NotFound),
    ("POST", 504, "<html>Gateway Time-out</html>", UnknownOutcome),
    ("GET", 504, "<html>Gateway Time-out</html>", Transient),
    ("POST", 500, {"exc_type": "InternalServerError"}, Transient),
    ("PUT", 417, {"exception": "frappe.exceptions.ValidationError: Bad thing"}, BusinessError),
])
def test_status_and_exc_type_map_once_to_the_tree(method: str, status: int, body: object,
                                                  expected: type) -> None:
    error = map_error(method, "/api/resource/Sales%20Order", status, body, None)
    assert type(error) is expected
    assert error.status == status


def test_messages_are_plain_text_from_server_messages_or_exception() -> None:
    error = map_error("POST", "/p", 417, _frappe("ValidationError", "Tax configuration "
                                                 "missing: no Tax Rule for X"), None)
    assert isinstance(error, BusinessError) and error.category == "tax_configuration"
    assert "<b>" not in error.message and "no Tax Rule for X" in error.message
    fallback = map_error("PUT", "/p", 417, {"exception": "frappe.exceptions.ValidationError: "
                                            "Bad thing"}, None)
    assert fallback.message.endswith(": Bad thing")


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert retry_after_s("7") == 7.0
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    assert 25 <= (retry_after_s(later.strftime("%a, %d %b %Y %H:%M:%S GMT")) or 0) <= 30
    throttled = map_error("GET", "/p", 429, {}, None)
    assert isinstance(throttled, Throttled) and throttled.retry_after_s == 1.0
