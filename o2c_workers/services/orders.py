"""Order submission (exactly once per opportunity) and the write-back to Salesforce."""

from __future__ import annotations

from dataclasses import dataclass

from o2c_workers import sfid
from o2c_workers.catalogue import RECONCILIATION
from o2c_workers.chain import ChainContext
from o2c_workers.errors import NO_SALESFORCE_ID, BusinessError, NotOurs
from o2c_workers.models import ErpOrder, cents
from o2c_workers.services.ports import ErpAdapter, SalesforceApi


@dataclass(frozen=True)
class WriteBackFields:
    """The Salesforce fields the fleet writes (API names, configurable)."""

    customer_number: str = "ERP_Customer_Number__c"
    order_number: str = "ERP_Order_Number__c"
    order_status: str = "ERP_Order_Status__c"
    invoice_status: str = "Invoice_Status__c"
    payment_status: str = "Payment_Status__c"


def submit_order(ctx: ChainContext, *, erp: ErpAdapter) -> ChainContext:
    """Third step: create and submit the sales order; a repeat returns the same order."""
    order = ctx.need_order()
    customer = ctx.need_customer()
    booked = erp.submit_sales_order(order, customer)
    if cents(booked.net_total) != order.net_total:
        raise BusinessError(
            f"ERP order {booked.name} net total {booked.net_total} differs from the "
            f"opportunity's {order.net_total} {order.currency}", category=RECONCILIATION)
    return ctx.model_copy(update={"erp_order": booked})


def write_back(ctx: ChainContext, *, sf: SalesforceApi, fields: WriteBackFields) -> None:
    """Last step: the ERP order number and status on the opportunity, the customer number
    on the account, in one composite call."""
    booked = ctx.need_erp_order()
    customer = ctx.need_customer()
    sf.update_many([
        ("Opportunity", ctx.trace_key, {fields.order_number: booked.name,
                                           fields.order_status: booked.status}),
        ("Account", customer.salesforce_id, {fields.customer_number: customer.name}),
    ])


def opportunity_of_order(order: ErpOrder) -> str:
    """The opportunity the order was booked from; one keyed in the ERP by hand has none."""
    if not order.salesforce_id:
        raise NotOurs(f"Sales Order {order.name} has no salesforce_id: keyed in the ERP, "
                      f"not booked from Salesforce", reason=NO_SALESFORCE_ID)
    return sfid.to18(order.salesforce_id)


def sync_status(order_name: str, *, sf: SalesforceApi, erp: ErpAdapter,
                fields: WriteBackFields) -> ErpOrder:
    """The ERP changed an order's status: write the current status to the opportunity."""
    current = erp.get_sales_order(order_name)
    sf.update("Opportunity", opportunity_of_order(current), {fields.order_status: current.status})
    return current
