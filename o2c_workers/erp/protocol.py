"""What the fleet needs from an ERP, whatever speaks to it.

Every method raises only errors of ``o2c_workers.errors`` (Throttled, Transient,
UnknownOutcome, BusinessError with a category, AuthError, NotFound, InvalidPayload). Every
create is idempotent on the record's Salesforce id: calling it twice yields one record.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from o2c_workers.models import (
    CreditStatus,
    CustomerData,
    ErpCustomer,
    ErpInvoice,
    ErpOrder,
    ErpPayment,
    OrderData,
)


class ErpAdapter(Protocol):
    def ensure_customer(self, customer: CustomerData) -> ErpCustomer:
        """The ERP customer of this Salesforce account, created if it does not exist."""

    def find_customer(self, salesforce_id: str) -> ErpCustomer | None: ...

    def update_customer(self, current: ErpCustomer, customer: CustomerData) -> ErpCustomer:
        """Bring the ERP customer's name and country in line with the account (idempotent)."""

    def known_items(self, item_codes: Sequence[str]) -> set[str]:
        """Which of these item codes the ERP knows."""

    def item_prices(self, item_codes: Sequence[str], currency: str) -> dict[str, Decimal]:
        """Selling price per item in the price list of ``currency`` (absent: no price)."""

    def tax_rate(self, country: str) -> Decimal | None:
        """The sales tax rate (percent) for a billing country; None when none is set up."""

    def credit_status(self, customer: ErpCustomer) -> CreditStatus: ...

    def submit_sales_order(self, order: OrderData, customer: ErpCustomer) -> ErpOrder:
        """Create and submit the order, exactly once per opportunity.

        A duplicate (the order exists already) returns the existing order; an unknown
        outcome (the answer was lost) is resolved by looking the order up before retrying.
        """

    def find_sales_order(self, salesforce_id: str) -> ErpOrder | None: ...

    def get_sales_order(self, name: str) -> ErpOrder: ...

    def get_sales_invoice(self, name: str) -> ErpInvoice: ...

    def get_payment_entry(self, name: str) -> ErpPayment: ...

    def close(self) -> None: ...
