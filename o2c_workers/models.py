"""Canonical models of the O2C process. Money is ``Decimal`` with an ISO 4217 currency."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

CENT = Decimal("0.01")
#: Places of a per-unit rate. Salesforce rounds only the line total, so a discounted unit
#: rate (149 less 12.5% = 130.375) must keep its places for the totals to agree; ERPNext
#: is set up with this rate precision (see the README).
RATE_PLACES = Decimal("0.000001")


def cents(value: Decimal) -> Decimal:
    """Round half up to the cent, as both Salesforce and ERPNext present currency."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _currency(value: str) -> str:
    if len(value) != 3 or not value.isalpha() or not value.isupper():
        raise ValueError(f"not an ISO 4217 currency code: {value!r}")
    return value


Currency = Annotated[str, AfterValidator(_currency)]


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("money must be a finite number")
    return value


Amount = Annotated[Decimal, AfterValidator(_finite)]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CustomerData(Model):
    """An account as the ERP customer it becomes."""

    salesforce_id: str
    name: str
    country: str | None = None
    currency: Currency
    account_number: str | None = None
    city: str | None = None


class ErpCustomer(Model):
    name: str
    salesforce_id: str
    frozen: bool = False
    country: str | None = None


class OrderLine(Model):
    salesforce_id: str
    item_code: str
    quantity: Amount
    #: Price book price before discount (Salesforce ListPrice).
    list_price: Amount
    #: Sales price per unit (Salesforce UnitPrice).
    unit_price: Amount
    discount_percent: Amount = Decimal(0)
    #: What Salesforce computed for the line (TotalPrice).
    total: Amount

    @property
    def net_rate(self) -> Decimal:
        """The rate per unit the ERP books: sales price less the line discount."""
        return (self.unit_price * (1 - self.discount_percent / 100)).quantize(
            RATE_PLACES, rounding=ROUND_HALF_UP)

    @property
    def amount(self) -> Decimal:
        """The line's net amount, as both Salesforce (TotalPrice) and the ERP round it."""
        return cents(self.net_rate * self.quantity)

    @property
    def effective_discount_percent(self) -> Decimal:
        """The discount off the list price that ``net_rate`` amounts to (10 places)."""
        if not self.list_price:
            return Decimal(0)
        return ((1 - self.net_rate / self.list_price) * 100).quantize(Decimal("1E-10"))


class OrderData(Model):
    """A won opportunity as the sales order it becomes."""

    opportunity_id: str
    account_id: str
    name: str
    currency: Currency
    close_date: date | None = None
    lines: list[OrderLine] = Field(min_length=1)
    #: The opportunity Amount (net of tax), to reconcile with the ERP's net total.
    amount: Amount

    @property
    def net_total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))


class CreditStatus(Model):
    frozen: bool
    limit: Amount | None
    outstanding: Amount


class ErpOrderLine(Model):
    """One item row of an ERP sales order, as the ERP holds it."""

    item_code: str
    qty: Amount
    #: The net rate per unit (price list rate less the discount).
    rate: Amount
    price_list_rate: Amount = Decimal(0)
    discount_percentage: Amount = Decimal(0)
    amount: Amount


class ErpOrder(Model):
    name: str
    salesforce_id: str
    status: str
    #: 0 draft, 1 submitted, 2 cancelled.
    docstatus: int
    currency: Currency
    net_total: Amount
    total_taxes: Amount
    grand_total: Amount
    customer: str | None = None
    #: Percent billed and delivered: anything above 0 is downstream of the order.
    per_billed: Amount = Decimal(0)
    per_delivered: Amount = Decimal(0)
    #: The cancelled order this one amends.
    amended_from: str | None = None
    #: The item rows; empty when the order was read from a list (read it by name for them).
    lines: tuple[ErpOrderLine, ...] = ()
    #: The ERP's modification time of the version read (its time zone, no offset); it
    #: orders the status write-backs too.
    modified: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.docstatus == 2

    @property
    def closed(self) -> bool:
        return self.docstatus == 1 and self.status == "Closed"

    @property
    def live(self) -> bool:
        """Submitted and neither cancelled nor closed: the opportunity's one order."""
        return self.docstatus == 1 and self.status != "Closed"

    @property
    def downstream(self) -> bool:
        """Something happened after booking that cancelling would not undo."""
        return self.per_billed > 0 or self.per_delivered > 0


class ErpInvoice(Model):
    name: str
    sales_order: str | None
    salesforce_id: str | None
    status: str
    currency: Currency
    net_total: Amount
    grand_total: Amount
    outstanding: Amount
    #: 0 draft, 1 submitted, 2 cancelled.
    docstatus: int = 1
    #: The opportunity it bills, as the ERP copied it from its order (``po_no``).
    opportunity_id: str | None = None
    customer: str | None = None
    #: The ERP's modification time of the version read (its time zone, no offset); it
    #: orders the status write-backs too.
    modified: str | None = None


class ErpPayment(Model):
    name: str
    salesforce_id: str | None
    currency: Currency
    paid_amount: Amount
    #: Sales Invoice name → amount allocated to it.
    allocations: dict[str, Amount]
    modified: str | None = None


class ErpChange(Model):
    """One version of an ERP document the change feed found: what a webhook event of it
    would have said (its ``event`` routes it), and what the event's trace key is read from."""

    doctype: str
    name: str
    #: The webhook event this version stands for (``on_submit``, ``on_cancel``, ...).
    event: str
    #: Its modification time as the ERP wrote it (the version; the dedupe normalizes it).
    modified: str
    #: The same instant, epoch s (the ERP's time zone applied).
    modified_at: float
    salesforce_id: str | None = None
    po_no: str | None = None


class ChangeCursor(Model):
    """Where a run of the change feed is: changes at or after ``since`` (epoch s), and the
    adapter's own place within them (``position``, opaque to the feed)."""

    since: float
    page_size: int = Field(default=500, ge=1)
    position: str | None = None


class ChangePage(Model):
    """One page of changes, and the cursor of the next (None: the feed has caught up)."""

    changes: list[ErpChange]
    next: ChangeCursor | None
    #: Master documents saved (items, prices, tax rules, customers: no event of theirs is
    #: routed), for the cache to forget.
    masters: list[ErpChange] = Field(default_factory=list)
    #: ERP calls this page cost.
    calls: int = 1
