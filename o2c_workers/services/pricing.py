"""Pricing validation of a won opportunity, before any order is created.

The opportunity is priced as Salesforce holds it, not as the message said: from the read the
first step made (one query: the opportunity, its account and its lines) when it is younger
than ``REPRICE_AFTER_S``, else read again. Messages are late, repeated and reordered, and
one that is no longer Closed Won is ``Skipped`` (no order, nothing written). Each refusal is a
``BusinessError`` with the category a person can act on; nothing is written to the ERP by
this step.

What the ERP refuses on submit as clearly as this step would, it does not ask: a frozen
customer (``PartyFrozen``) and a crossed credit limit come back from the order's submit,
mapped to ``credit_hold`` (``erp.mapping``). Items, prices and tax, which ERPNext lets
through, are checked here against master data served from the shared cache
(``erp.cached``), the reads that remain sent together; a cached price that would refuse
the order is read again from the ERP before it does.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from o2c_workers.catalogue import PRICE_MISMATCH
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


def check_items(order: OrderData, erp: ErpAdapter, *, known: set[str] | None = None) -> None:
    codes = sorted({line.item_code for line in order.lines})
    missing = sorted(set(codes) - (erp.known_items(codes) if known is None else known))
    if missing:
        raise refuse("unknown_item", f"unknown item(s) in the ERP: {', '.join(missing)}")


def check_prices(order: OrderData, erp: ErpAdapter, *, max_discount_percent: Decimal,
                 prices: dict[str, Decimal] | None = None) -> None:
    """The lines against the ERP's price list (``prices``: as read already, perhaps from
    the cache); a refusal on a price is confirmed with the ERP's own before it stands."""
    codes = sorted({line.item_code for line in order.lines})
    try:
        _check_prices(order, erp.item_prices(codes, order.currency) if prices is None
                      else prices, max_discount_percent=max_discount_percent)
    except BusinessError as exc:
        if exc.category != PRICE_MISMATCH:
            raise
        _check_prices(order, erp.item_prices(codes, order.currency, fresh=True),
                      max_discount_percent=max_discount_percent)


def _check_prices(order: OrderData, prices: dict[str, Decimal], *,
                  max_discount_percent: Decimal) -> None:
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


def check_tax(customer: ErpCustomer, erp: ErpAdapter, *,
              rate: Future[Decimal | None] | None = None) -> Decimal:
    if not customer.country:
        raise refuse("tax_configuration", f"customer {customer.name} has no billing country")
    found = erp.tax_rate(customer.country) if rate is None else rate.result()
    if found is None:
        raise refuse("tax_configuration", f"no sales tax rule for {customer.country}")
    return found


def read_together(order: OrderData, customer: ErpCustomer, erp: ErpAdapter) -> tuple[
        Future[set[str]], Future[dict[str, Decimal]], Future[Decimal | None] | None]:
    """The step's three reads (known items, prices, the tax rate) at once, on a small
    pool: each is a cache read when warm, an ERP call when not; together they wait for
    the slowest instead of the sum."""
    codes = sorted({line.item_code for line in order.lines})
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="o2c-pricing") as pool:
        # Each read runs in a copy of this step's context: its log lines keep the trace key.
        known = pool.submit(contextvars.copy_context().run, erp.known_items, codes)
        prices = pool.submit(contextvars.copy_context().run, erp.item_prices, codes,
                             order.currency)
        rate = pool.submit(contextvars.copy_context().run, erp.tax_rate,
                           customer.country) if customer.country else None
    # A read's error is raised where its check runs, in the order the checks run (items,
    # prices, tax), as when the reads went one after the other.
    return known, prices, rate


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
    known, prices, tax = read_together(order, customer, erp)
    check_items(order, erp, known=known.result())
    check_prices(order, erp, max_discount_percent=max_discount_percent, prices=prices.result())
    rate = check_tax(customer, erp, rate=tax)
    grand_total = cents(order.net_total * (1 + rate / 100))
    return ctx.model_copy(update={"opportunity": None, "order": order, "pricing": Pricing(
        tax_rate=rate, net_total=order.net_total, expected_grand_total=grand_total,
        priced_at=read.read_at)})
