"""Pricing and credit validation of a won opportunity, before any order is created.

The opportunity is priced as Salesforce holds it, not as the message said: from the read the
first step made (one query: the opportunity, its account and its lines) when it is younger
than ``REPRICE_AFTER_S``, else read again. Messages are late, repeated and reordered, and
one that is no longer Closed Won is ``Skipped`` (no order, nothing written). Each refusal is a
``BusinessError`` with the category a person can act on; nothing is written to the ERP by
this step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from o2c_workers.chain import ChainContext, Pricing
from o2c_workers.errors import BusinessError
from o2c_workers.models import ErpCustomer, OrderData, cents
from o2c_workers.services import reading
from o2c_workers.services.convert import WON, order_from_opportunity
from o2c_workers.services.ports import ErpAdapter, SalesforceApi

#: A read of the opportunity, or a pricing from it, older than this (seconds) is read again
#: before it is used: a chain's steps run seconds apart; a redelivery or a requeue may come
#: days later.
REPRICE_AFTER_S = 60.0


@dataclass(frozen=True)
class Skipped:
    """The opportunity is no longer won: its chain ends here, without an order."""

    stage: str


def refuse(category: str, message: str) -> BusinessError:
    """A refusal filed under ``category``, with the catalogue's hint for its team."""
    return BusinessError(message, category=category)


def check_items(order: OrderData, erp: ErpAdapter) -> None:
    codes = sorted({line.item_code for line in order.lines})
    missing = sorted(set(codes) - erp.known_items(codes))
    if missing:
        raise refuse("unknown_item", f"unknown item(s) in the ERP: {', '.join(missing)}")


def check_prices(order: OrderData, erp: ErpAdapter, *, max_discount_percent: Decimal) -> None:
    prices = erp.item_prices(sorted({line.item_code for line in order.lines}), order.currency)
    for line in order.lines:
        price = prices.get(line.item_code)
        if price is None:
            raise refuse("price_mismatch", f"{line.item_code} has no {order.currency} price in "
                         "the ERP price list")
        if cents(price) != cents(line.list_price):
            raise refuse("price_mismatch", f"{line.item_code}: Salesforce list price "
                         f"{cents(line.list_price)} differs from the ERP price {cents(price)} "
                         f"{order.currency}")
        if line.effective_discount_percent > max_discount_percent:
            raise refuse("discount_policy", f"{line.item_code}: discount "
                         f"{line.effective_discount_percent:.2f}% exceeds the "
                         f"{max_discount_percent}% policy")
        if line.amount != cents(line.total):
            raise refuse("price_mismatch", f"{line.item_code}: line total {line.total} does not "
                         f"match {line.quantity} x {line.net_rate}")
    if order.net_total != cents(order.amount):
        raise refuse("amount_mismatch", f"order lines total {order.net_total} but the "
                     f"opportunity Amount is {cents(order.amount)} {order.currency}")


def check_tax(customer: ErpCustomer, erp: ErpAdapter) -> Decimal:
    if not customer.country:
        raise refuse("tax_configuration", f"customer {customer.name} has no billing country")
    rate = erp.tax_rate(customer.country)
    if rate is None:
        raise refuse("tax_configuration", f"no sales tax rule for {customer.country}")
    return rate


def check_credit(customer: ErpCustomer, erp: ErpAdapter, grand_total: Decimal) -> None:
    status = erp.credit_status(customer)
    if status.frozen or customer.frozen:
        raise refuse("credit_hold", f"customer {customer.name} is on credit hold")
    if status.limit is not None and status.outstanding + grand_total > status.limit:
        raise refuse("credit_hold", f"credit limit {status.limit} would be crossed: outstanding "
                     f"{status.outstanding} + order {grand_total}")


def validate_order(ctx: ChainContext, *, sf: SalesforceApi, erp: ErpAdapter,
                   max_discount_percent: Decimal) -> ChainContext | Skipped:
    """Second step: the opportunity as it is now (the first step's read, if fresh); build
    its order from Salesforce and check it against the ERP, unless it is no longer Closed
    Won. The read is consumed: the priced context carries the order, not the read."""
    read = ctx.opportunity
    if read is None or not read.fresh(time.time(), max_age_s=REPRICE_AFTER_S):
        read = reading.read_opportunity(sf, ctx.trace_key)
    stage = str(read.opportunity.get("StageName") or "")
    if stage != WON:
        return Skipped(stage)
    order = order_from_opportunity(read.opportunity, read.lines)
    customer = ctx.need_customer()
    check_items(order, erp)
    check_prices(order, erp, max_discount_percent=max_discount_percent)
    rate = check_tax(customer, erp)
    grand_total = cents(order.net_total * (1 + rate / 100))
    check_credit(customer, erp, grand_total)
    return ctx.model_copy(update={"opportunity": None, "order": order, "pricing": Pricing(
        tax_rate=rate, net_total=order.net_total, expected_grand_total=grand_total,
        priced_at=read.read_at)})
