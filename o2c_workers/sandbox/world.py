"""The data both simulators are seeded with, so that they agree with each other.

``generate_world`` (the Salesforce simulator's seed generator) fills these; the ERP simulator
takes an ``ErpSeed``. Money is ``Decimal``; currencies are ISO 4217 codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass
class ItemSeed:
    """An ERP Item; ``code`` equals the Salesforce Product2.ProductCode."""

    code: str
    name: str
    #: Selling price per currency, the same as the Salesforce PricebookEntry.UnitPrice.
    prices: dict[str, Decimal]
    uom: str = "Nos"


@dataclass
class ErpSeed:
    """What the ERP knows before any order arrives."""

    items: list[ItemSeed] = field(default_factory=list)
    #: Billing country → tax rate in percent (a Tax Rule and its template exist for each).
    tax_rates: dict[str, Decimal] = field(default_factory=dict)
    #: Salesforce Account id (18 chars) → credit limit, applied when the Customer is created.
    credit_limits: dict[str, Decimal] = field(default_factory=dict)
    #: Salesforce Account ids whose Customer is created frozen (credit hold).
    credit_hold: set[str] = field(default_factory=set)
    default_credit_limit: Decimal = Decimal("1000000.00")
    company: str = "O2C Sandbox Inc"
    company_currency: str = "USD"
