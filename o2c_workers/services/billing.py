"""Invoices and payments from the ERP, written back to their opportunities.

Both read the document's current state from the ERP, never the event's copy, so events that
arrive twice or out of order write the same, latest truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from o2c_workers.catalogue import RECONCILIATION
from o2c_workers.errors import BusinessError, NotFound
from o2c_workers.models import ErpInvoice, ErpOrder, cents
from o2c_workers.services.orders import WriteBackFields, opportunity_of_order
from o2c_workers.services.ports import ErpAdapter, SalesforceApi


@dataclass(frozen=True)
class InvoiceSynced:
    opportunity_id: str
    invoice: ErpInvoice
    order: ErpOrder


def order_of_invoice(invoice: ErpInvoice, erp: ErpAdapter) -> ErpOrder:
    if not invoice.sales_order:
        raise NotFound(f"invoice {invoice.name} is not linked to a sales order")
    return erp.get_sales_order(invoice.sales_order)


def sync_invoice(invoice_name: str, *, sf: SalesforceApi, erp: ErpAdapter,
                 fields: WriteBackFields) -> InvoiceSynced:
    """Reconcile an invoice with its order to the cent, then write its status back."""
    invoice = erp.get_sales_invoice(invoice_name)
    order = order_of_invoice(invoice, erp)
    if (invoice.currency, cents(invoice.grand_total)) != (order.currency,
                                                           cents(order.grand_total)):
        raise BusinessError(
            f"invoice {invoice.name} total {invoice.grand_total} {invoice.currency} differs "
            f"from order {order.name} total {order.grand_total} {order.currency}",
            category=RECONCILIATION)
    opportunity_id = opportunity_of_order(order)
    sf.update("Opportunity", opportunity_id, {fields.invoice_status: invoice.status})
    return InvoiceSynced(opportunity_id, invoice, order)


def payment_status(invoice: ErpInvoice) -> str:
    if cents(invoice.outstanding) <= 0:
        return "Paid"
    if cents(invoice.outstanding) < cents(invoice.grand_total):
        return "Partly Paid"
    return "Unpaid"


def apply_payment(payment_name: str, *, sf: SalesforceApi, erp: ErpAdapter,
                  fields: WriteBackFields) -> list[InvoiceSynced]:
    """A payment arrived: each invoice it pays gets its payment (and invoice) status."""
    payment = erp.get_payment_entry(payment_name)
    synced = []
    changes = []
    for invoice_name in sorted(payment.allocations):
        invoice = erp.get_sales_invoice(invoice_name)
        order = order_of_invoice(invoice, erp)
        opportunity_id = opportunity_of_order(order)
        changes.append(("Opportunity", opportunity_id, {
            fields.payment_status: payment_status(invoice),
            fields.invoice_status: invoice.status,
        }))
        synced.append(InvoiceSynced(opportunity_id, invoice, order))
    if changes:
        sf.update_many(changes)
    return synced
