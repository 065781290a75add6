"""Invoices and payments from the ERP, written back to their opportunities.

Both apply the event's document when it carries one that is not older than any version
the fleet has seen (``ErpAdapter.invoice_of_event``), else read its current state from the
ERP, so events that arrive twice or out of order never write an older state over a newer
one. The order an invoice is checked against is its booking (``booked_order``): the key,
currency and totals of a submitted order never change. Documents that did not come from
Salesforce (an order keyed in the ERP by hand, its invoices and payments) are not ours:
``NotOurs``, before anything is compared or written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from o2c_workers.catalogue import RECONCILIATION
from o2c_workers.errors import NO_SALES_INVOICE, NO_SALES_ORDER, BusinessError, NotOurs
from o2c_workers.models import ErpInvoice, ErpOrder, cents
from o2c_workers.services.orders import WriteBackFields, opportunity_of_order
from o2c_workers.services.ports import ErpAdapter, StatusWrites, Write
from o2c_workers.writeback import stamp_of

log = logging.getLogger("o2c.billing")


@dataclass(frozen=True)
class InvoiceSynced:
    opportunity_id: str
    invoice: ErpInvoice
    order: ErpOrder


def order_of_invoice(invoice: ErpInvoice, erp: ErpAdapter) -> tuple[ErpOrder, str]:
    """The invoice's order and the opportunity it was booked from, or ``NotOurs``."""
    if not invoice.sales_order:
        raise NotOurs(f"invoice {invoice.name} was made from no sales order: keyed in the ERP",
                      reason=NO_SALES_ORDER)
    order = erp.booked_order(invoice.sales_order)
    return order, opportunity_of_order(order)


def sync_invoice(invoice_name: str, *, out: StatusWrites, erp: ErpAdapter,
                 fields: WriteBackFields, event: Mapping[str, Any] | None = None
                 ) -> InvoiceSynced:
    """Reconcile an invoice with its order to the cent, then write its status back."""
    invoice = (erp.invoice_of_event(event) if event else None) \
        or erp.get_sales_invoice(invoice_name)
    order, opportunity_id = order_of_invoice(invoice, erp)
    if (invoice.currency, cents(invoice.grand_total)) != (order.currency,
                                                           cents(order.grand_total)):
        raise BusinessError(
            f"invoice {invoice.name} total {invoice.grand_total} {invoice.currency} differs "
            f"from order {order.name} total {order.grand_total} {order.currency}",
            category=RECONCILIATION)
    out.accept([Write("Opportunity", opportunity_id, {fields.invoice_status: invoice.status},
                      stamp=stamp_of(invoice.modified), trace_key=opportunity_id,
                      source=f"Sales Invoice {invoice.name}")])
    return InvoiceSynced(opportunity_id, invoice, order)


def payment_status(invoice: ErpInvoice) -> str:
    if cents(invoice.outstanding) <= 0:
        return "Paid"
    if cents(invoice.outstanding) < cents(invoice.grand_total):
        return "Partly Paid"
    return "Unpaid"


def apply_payment(payment_name: str, *, out: StatusWrites, erp: ErpAdapter,
                  fields: WriteBackFields, event: Mapping[str, Any] | None = None
                  ) -> list[InvoiceSynced]:
    """A payment arrived: each invoice of ours it pays gets its payment (and invoice) status
    (each invoice read now: its outstanding amount is what the payment changed); one that
    pays none of ours is ``NotOurs``."""
    payment = (erp.payment_of_event(event) if event else None) \
        or erp.get_payment_entry(payment_name)
    if not payment.allocations:
        raise NotOurs(f"payment {payment.name} pays no sales invoice", reason=NO_SALES_INVOICE)
    synced = []
    changes = []
    foreign: list[NotOurs] = []
    for invoice_name in sorted(payment.allocations):
        invoice = erp.get_sales_invoice(invoice_name)
        try:
            order, opportunity_id = order_of_invoice(invoice, erp)
        except NotOurs as exc:
            foreign.append(exc)
            continue
        # Both statuses as of the invoice's version: the payment changed its outstanding.
        changes.append(Write("Opportunity", opportunity_id, {
            fields.payment_status: payment_status(invoice),
            fields.invoice_status: invoice.status,
        }, stamp=stamp_of(invoice.modified), trace_key=opportunity_id,
            source=f"Payment Entry {payment.name}, Sales Invoice {invoice.name}"))
        synced.append(InvoiceSynced(opportunity_id, invoice, order))
    if not synced:
        raise NotOurs(f"payment {payment.name} pays no invoice of ours: "
                      f"{foreign[0].message}", reason=foreign[0].reason)
    for other in foreign:
        log.info("payment %s: left alone: %s", payment.name, other.message)
    out.accept(changes)
    return synced
