"""What the fleet needs from an ERP, whatever speaks to it.

Every method raises only errors of ``o2c_workers.errors`` (Throttled, Transient,
UnknownOutcome, BusinessError with a category, AuthError, NotFound, InvalidPayload). Every
create is idempotent on the record's Salesforce id: calling it twice yields one record.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from o2c_workers.models import (
    ChangeCursor,
    ChangePage,
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

    def item_prices(self, item_codes: Sequence[str], currency: str, *,
                    fresh: bool = False) -> dict[str, Decimal]:
        """Selling price per item in the price list of ``currency`` (absent: no price);
        ``fresh`` asks the ERP itself, past any cache (before a price refuses an order)."""

    def tax_rate(self, country: str) -> Decimal | None:
        """The sales tax rate (percent) for a billing country; None when none is set up."""

    def credit_status(self, customer: ErpCustomer) -> CreditStatus: ...

    def submit_sales_order(self, order: OrderData, customer: ErpCustomer, *,
                           key: str | None = None, amended_from: str | None = None) -> ErpOrder:
        """Create and submit the order, exactly once per key: the opportunity id, or the
        revision key of an amendment (``erp.revisions``) that names the cancelled order it
        follows in ``amended_from``.

        A duplicate (the key is taken) returns the order holding it, whatever its state:
        the caller compares it. An unknown outcome (the answer was lost) is resolved by
        looking the order up before retrying. The answer carries the item rows. Nothing is
        created while ``salesforce_id`` is not unique (BusinessError ``erp_configuration``).
        """

    def find_sales_order(self, salesforce_id: str) -> ErpOrder | None: ...

    def find_sales_orders(self, opportunity_id: str) -> list[ErpOrder]:
        """Every order of the opportunity, each revision, lowest revision first; without
        their item rows (``get_sales_order`` has them)."""

    def get_sales_order(self, name: str) -> ErpOrder:
        """The order with its item rows, billing and delivery."""

    def cancel_sales_order(self, name: str) -> ErpOrder:
        """Cancel a submitted order; one already cancelled is returned as is. The ERP's
        refusal (invoiced, delivered, closed) is a BusinessError."""

    def check_unique_ids(self) -> None:
        """Raise BusinessError ``erp_configuration`` unless ``salesforce_id`` is unique on
        every DocType the adapter creates."""

    def booked_order(self, name: str) -> ErpOrder:
        """The order's booking facts (key, customer, currency, totals, lines), which never
        change once it is submitted; its status and billing may be old: read
        ``get_sales_order`` for those."""

    def order_of_event(self, event: Mapping[str, Any]) -> ErpOrder | None:
        """The Sales Order an event carries (its ``doc``), when no newer version of it was
        seen; None: read it (``get_sales_order``)."""

    def invoice_of_event(self, event: Mapping[str, Any]) -> ErpInvoice | None:
        """As ``order_of_event``, for a Sales Invoice."""

    def payment_of_event(self, event: Mapping[str, Any]) -> ErpPayment | None:
        """As ``order_of_event``, for a Payment Entry."""

    def get_sales_invoice(self, name: str) -> ErpInvoice: ...

    def get_payment_entry(self, name: str) -> ErpPayment: ...

    def changes_since(self, cursor: ChangeCursor) -> ChangePage:
        """The change feed: one page of the documents whose webhooks the fleet routes (Sales
        Invoices and Payment Entries submitted, Sales Order status changes and
        cancellations) modified at or after ``cursor.since``, each as the event it stands
        for, and the cursor of the next page (None once caught up). One ERP call a page, at
        most ``cursor.page_size`` documents; a document changed while the feed pages is
        found again later, never skipped. An ERP without webhooks is served by this alone.
        """

    # --- listings (``o2c reconcile``) -------------------------------------------------------

    def sales_orders_modified_since(self, since: float, *,
                                    page_length: int = 500) -> Iterator[list[ErpOrder]]:
        """Every Sales Order carrying a Salesforce id modified at or after ``since``
        (epoch s), oldest first, one list call a page (no item rows; no empty page)."""

    def sales_orders_of_many(self, opportunity_ids: Sequence[str]) -> list[ErpOrder]:
        """Every order (each revision, any state) of these opportunities, in few list calls
        (no item rows)."""

    def sales_invoices_of_many(self, opportunity_ids: Sequence[str]) -> list[ErpInvoice]:
        """Every Sales Invoice billed for these opportunities (``opportunity_id`` set from
        the order's customer reference), in few list calls."""

    def payment_entries_of(self, invoice: ErpInvoice) -> list[ErpPayment]:
        """The submitted Payment Entries that allocate to ``invoice``."""

    def close(self) -> None: ...
