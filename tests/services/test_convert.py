"""Salesforce records → canonical models: money stays exact, bad input is named."""

from __future__ import annotations

from decimal import Decimal

import pytest

from o2c_workers.errors import InvalidPayload
from o2c_workers.models import OrderLine
from o2c_workers.services.convert import (
    customer_from_account,
    decimal,
    line_from_item,
    order_from_opportunity,
)

OPP = {"Id": "0065g00000AbCdE", "AccountId": "0015g00000AbCdE", "Name": "Deal",
       "CurrencyIsoCode": "EUR", "Amount": Decimal("5961.60"), "CloseDate": "2026-11-20"}
LINE = {"Id": "00k5g00000AbCdE", "ProductCode": "GW-200", "Quantity": Decimal("2"),
        "ListPrice": Decimal("3312.00"), "UnitPrice": Decimal("3312.00"),
        "Discount": Decimal("10"), "TotalPrice": Decimal("5961.60")}


def test_order_from_opportunity_keeps_money_exact():
    order = order_from_opportunity(OPP, [LINE])
    assert order.opportunity_id == "0065g00000AbCdEAAV"
    assert order.currency == "EUR"
    [line] = order.lines
    assert line.net_rate == Decimal("2980.80")
    assert order.net_total == Decimal("5961.60") == order.amount
    assert line.effective_discount_percent == Decimal("10.000000")


def test_strings_from_the_wire_become_decimals():
    line = line_from_item({**LINE, "Quantity": "3", "UnitPrice": "0.10", "ListPrice": "0.10",
                           "Discount": None, "TotalPrice": "0.30"})
    assert line.quantity * line.net_rate == Decimal("0.30")


@pytest.mark.parametrize("value", [1.5, "lots", "NaN", "Infinity", ""])
def test_bad_numbers_are_refused_by_name(value):
    with pytest.raises(InvalidPayload, match="Quantity"):
        decimal({"Quantity": value, "Id": "x"}, "Quantity")


def test_an_opportunity_without_lines_is_invalid():
    with pytest.raises(InvalidPayload, match="no line items"):
        order_from_opportunity(OPP, [])


def test_a_line_without_product_code_is_invalid():
    with pytest.raises(InvalidPayload, match="ProductCode"):
        line_from_item({**LINE, "ProductCode": None})


def test_customer_from_account():
    customer = customer_from_account({"Id": "0015g00000AbCdE", "Name": "Acme GmbH",
                                      "BillingCountry": "Germany", "CurrencyIsoCode": "EUR"})
    assert (customer.salesforce_id, customer.country, customer.currency) == (
        "0015g00000AbCdEAAV", "Germany", "EUR")
    with pytest.raises(InvalidPayload, match="Name"):
        customer_from_account({"Id": "0015g00000AbCdE"})


def test_effective_discount_of_a_negotiated_unit_price():
    line = OrderLine(salesforce_id="x", item_code="A", quantity=Decimal(1),
                     list_price=Decimal("100"), unit_price=Decimal("90"),
                     discount_percent=Decimal("10"), total=Decimal("81.00"))
    assert line.net_rate == Decimal("81.00")
    assert line.effective_discount_percent == Decimal("19.000000")
