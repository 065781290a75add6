"""Conversions from Salesforce records to the canonical models (small, pure, tested)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from o2c_workers import sfid
from o2c_workers.errors import InvalidPayload
from o2c_workers.models import CustomerData, OrderData, OrderLine

Record = Mapping[str, Any]

#: The stage of a won opportunity: the only one an order is booked in.
WON = "Closed Won"


def decimal(record: Record, field: str, *, default: Decimal | None = None) -> Decimal:
    """A numeric field as Decimal; refuses floats, blanks and non-numbers by name."""
    value = record.get(field)
    if value is None or value == "":
        if default is not None:
            return default
        raise InvalidPayload(f"{field} is missing on {record.get('Id', 'the record')}")
    if isinstance(value, float):
        raise InvalidPayload(f"{field} arrived as a float; money must stay exact")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise InvalidPayload(f"{field} is not a number: {value!r}") from None
    if not result.is_finite():
        raise InvalidPayload(f"{field} is not a finite number")
    return result


def required(record: Record, field: str) -> Any:
    value = record.get(field)
    if value in (None, ""):
        raise InvalidPayload(f"{field} is missing on {record.get('Id', 'the record')}")
    return value


def customer_from_account(account: Record, *, default_currency: str = "USD") -> CustomerData:
    return CustomerData(
        salesforce_id=sfid.to18(str(required(account, "Id"))),
        name=str(required(account, "Name")),
        country=account.get("BillingCountry") or None,
        currency=str(account.get("CurrencyIsoCode") or default_currency),
        account_number=account.get("AccountNumber") or None,
        city=account.get("BillingCity") or None,
    )


def line_from_item(item: Record) -> OrderLine:
    code = item.get("ProductCode") or (item.get("Product2") or {}).get("ProductCode")
    if not code:
        raise InvalidPayload(f"line {item.get('Id')} has no ProductCode")
    return OrderLine(
        salesforce_id=str(required(item, "Id")),
        item_code=str(code),
        quantity=decimal(item, "Quantity"),
        list_price=decimal(item, "ListPrice", default=decimal(item, "UnitPrice")),
        unit_price=decimal(item, "UnitPrice"),
        discount_percent=decimal(item, "Discount", default=Decimal(0)),
        total=decimal(item, "TotalPrice"),
    )


def _date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def order_from_opportunity(opportunity: Record, items: Sequence[Record]) -> OrderData:
    if not items:
        raise InvalidPayload(f"opportunity {opportunity.get('Id')} has no line items")
    return OrderData(
        opportunity_id=sfid.to18(str(required(opportunity, "Id"))),
        account_id=sfid.to18(str(required(opportunity, "AccountId"))),
        name=str(opportunity.get("Name") or opportunity["Id"]),
        currency=str(required(opportunity, "CurrencyIsoCode")),
        close_date=_date(opportunity.get("CloseDate")),
        lines=[line_from_item(item) for item in items],
        amount=decimal(opportunity, "Amount"),
    )
