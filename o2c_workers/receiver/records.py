"""Pydantic models of the sObjects an outbound message may carry.

Salesforce leaves a null field out of the message, so every field is optional here; a route
names the fields it cannot do without. Custom fields (``__c``) pass through untouched.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from o2c_workers import sfid

__all__ = ["MODELS", "SObject", "ValidationError", "validate_record"]


def _check_id(value: str) -> str:
    if not sfid.is_valid(value):
        raise ValueError(f"not a Salesforce id: {value!r}")
    return sfid.to18(value)


#: A 15- or 18-character id, normalised to 18 characters.
SalesforceId = Annotated[str, AfterValidator(_check_id)]


def _currency(value: str) -> str:
    if len(value) != 3 or not value.isalpha() or not value.isupper():
        raise ValueError(f"not an ISO 4217 currency code: {value!r}")
    return value


Currency = Annotated[str, AfterValidator(_currency)]


class SObject(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True, frozen=True)

    Id: SalesforceId
    Name: str | None = None
    CreatedDate: datetime | None = None
    LastModifiedDate: datetime | None = None
    SystemModstamp: datetime | None = None
    CurrencyIsoCode: Currency | None = None


class Account(SObject):
    AccountNumber: str | None = None
    BillingStreet: str | None = None
    BillingCity: str | None = None
    BillingState: str | None = None
    BillingPostalCode: str | None = None
    BillingCountry: str | None = None
    Phone: str | None = None
    Type: str | None = None
    ParentId: SalesforceId | None = None


class Contact(SObject):
    AccountId: SalesforceId | None = None
    FirstName: str | None = None
    LastName: str | None = None
    Email: str | None = None
    Phone: str | None = None


class Opportunity(SObject):
    AccountId: SalesforceId | None = None
    StageName: str | None = None
    Amount: Decimal | None = None
    CloseDate: date | None = None
    IsWon: bool | None = None
    IsClosed: bool | None = None
    Probability: Decimal | None = None
    Pricebook2Id: SalesforceId | None = None
    OwnerId: SalesforceId | None = None


class Order(SObject):
    AccountId: SalesforceId | None = None
    OpportunityId: SalesforceId | None = None
    Status: str | None = None
    EffectiveDate: date | None = None
    TotalAmount: Decimal | None = None
    OrderNumber: str | None = None


class Product2(SObject):
    ProductCode: str | None = None
    IsActive: bool | None = None
    Family: str | None = None


class PricebookEntry(SObject):
    Pricebook2Id: SalesforceId | None = None
    Product2Id: SalesforceId | None = None
    UnitPrice: Decimal | None = None
    IsActive: bool | None = None
    ProductCode: str | None = None


MODELS: dict[str, type[SObject]] = {
    model.__name__: model
    for model in (Account, Contact, Opportunity, Order, Product2, PricebookEntry)
}


def validate_record(sobject_type: str, fields: dict[str, Any]) -> SObject:
    """Validate one record; unknown types get the generic model (Id checked, rest kept)."""
    model = MODELS.get(sobject_type, SObject)
    return model.model_validate(fields)


def describe_errors(exc: ValidationError) -> str:
    """A short, human-readable list of what failed, without echoing values."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
