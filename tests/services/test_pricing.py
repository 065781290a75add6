"""Pricing, discount policy, tax and credit: the money checks before anything is booked."""

from __future__ import annotations

from decimal import Decimal

import pytest

from o2c_workers.errors import BusinessError
from o2c_workers.services import pricing

POLICY = Decimal("30")


def good(services) -> str:
    world = services.sandbox.world
    return next(o for o in world.opportunity_ids if o not in world.expected_failures)


def refusal(services, opportunity_id: str, *, policy: Decimal = POLICY) -> BusinessError:
    ctx = services.won(opportunity_id)
    with pytest.raises(BusinessError) as caught:
        pricing.validate_order(ctx, sf=services.sf, erp=services.erp,
                               max_discount_percent=policy)
    return caught.value


def test_a_good_opportunity_is_priced_to_the_cent(services):
    opp = good(services)
    ctx = pricing.validate_order(services.won(opp), sf=services.sf, erp=services.erp,
                                 max_discount_percent=POLICY)
    order, priced = ctx.need_order(), ctx.pricing
    assert priced is not None and order.opportunity_id == opp
    assert priced.net_total == order.net_total == order.amount
    expected = (order.net_total * (1 + priced.tax_rate / 100)).quantize(Decimal("0.01"))
    assert priced.expected_grand_total == expected


@pytest.mark.parametrize("reason", ["tax_configuration", "unknown_item"])
def test_the_seeded_failures_are_refused_with_their_category(services, reason):
    world = services.sandbox.world
    opp = next(o for o, why in world.expected_failures.items() if why == reason)
    error = refusal(services, opp)
    assert error.category == reason and not error.retryable
    assert error.remediation


def test_a_discount_above_the_policy_is_refused(services):
    opp = good(services)
    [line, *_] = services.sf.get_line_items(opp)
    services.sf.update("OpportunityLineItem", line["Id"], {"Discount": 40})
    error = refusal(services, opp)
    assert error.category == "discount_policy"
    assert "40.00% exceeds the 30% policy" in error.message
    # Within a looser policy it is priced: Salesforce computed the line's total and the
    # opportunity's amount from the new discount.
    ctx = pricing.validate_order(services.won(opp), sf=services.sf, erp=services.erp,
                                 max_discount_percent=Decimal("50"))
    assert ctx.need_order().amount == ctx.need_order().net_total


def test_a_line_total_that_does_not_match_its_rate_is_refused(services):
    opp = good(services)
    order = pricing.validate_order(services.won(opp), sf=services.sf, erp=services.erp,
                                   max_discount_percent=POLICY).need_order()
    [line, *rest] = order.lines
    wrong = order.model_copy(update={"lines": [
        line.model_copy(update={"total": line.total + 1}), *rest]})
    with pytest.raises(BusinessError, match="does not match") as caught:
        pricing.check_prices(wrong, services.erp, max_discount_percent=POLICY)
    assert caught.value.category == "price_mismatch"


def test_an_amount_that_differs_from_the_lines_is_refused(services):
    opp = good(services)
    amount = Decimal(str(services.sf.get_opportunity(opp)["Amount"]))
    services.sf.update("Opportunity", opp, {"Amount": amount + Decimal("0.01")})
    error = refusal(services, opp)
    assert error.category == "amount_mismatch"
    assert str(amount) in error.message


def test_a_list_price_that_differs_from_the_erp_is_refused(services):
    opp = good(services)
    [line, *_] = services.sf.get_line_items(opp)
    price = Decimal(str(line["ListPrice"]))
    services.sf.update("OpportunityLineItem", line["Id"],
                       {"ListPrice": price + 1, "UnitPrice": price + 1})
    assert refusal(services, opp).category == "price_mismatch"
