"""An ERP order compared in full with the order an opportunity makes: customer, currency,
lines (item, quantity, rates, discount, amount) and total. A total that agrees proves
nothing: 25 seats at 24% off cost what 20 seats at 5% off do.

Rates are compared to the places the ERP keeps (``RATE_PLACES``, see the README on rate
precision), amounts and totals to the cent, discounts to a hundredth of a percent (the
rates already carry them exactly).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from o2c_workers.erp.documents import discount_of
from o2c_workers.models import (
    RATE_PLACES,
    ErpCustomer,
    ErpOrder,
    ErpOrderLine,
    OrderData,
    OrderLine,
    cents,
)

PERCENT_PLACES = Decimal("0.01")


def differences(order: OrderData, customer: ErpCustomer, erp_order: ErpOrder) -> list[str]:
    """What differs, in words a person can act on; empty when they are the same order."""
    found = []
    if erp_order.customer != customer.name:
        found.append(f"customer {erp_order.customer} → {customer.name}")
    if erp_order.currency != order.currency:
        found.append(f"currency {erp_order.currency} → {order.currency}")
    found.extend(line_differences(order, erp_order))
    if cents(erp_order.net_total) != order.net_total:
        found.append(f"net total {cents(erp_order.net_total)} → {order.net_total}")
    return found


def line_differences(order: OrderData, erp_order: ErpOrder) -> list[str]:
    """What differs line by line (item, quantity, rates, discount, amount), in order."""
    found = []
    theirs, ours = list(erp_order.lines), list(order.lines)
    for n, (their, our) in enumerate(zip(theirs, ours, strict=False), start=1):
        changes = _line_changes(their, our)
        if changes:
            found.append(f"line {n} ({their.item_code}): {', '.join(changes)}")
    found.extend(f"line {n} ({line.item_code} x {_plain(line.qty)}) removed"
                 for n, line in enumerate(theirs[len(ours):], start=len(ours) + 1))
    found.extend(f"line {n} ({line.item_code} x {_plain(line.quantity)}) added"
                 for n, line in enumerate(ours[len(theirs):], start=len(theirs) + 1))
    return found


def _line_changes(their: ErpOrderLine, our: OrderLine) -> list[str]:
    pairs = (
        ("item", their.item_code, our.item_code),
        ("quantity", _plain(their.qty), _plain(our.quantity)),
        ("rate", _rate(their.rate), _rate(our.net_rate)),
        ("list rate", _rate(their.price_list_rate), _rate(our.list_price)),
        ("discount", _percent(their.discount_percentage), _percent(discount_of(our))),
        ("amount", str(cents(their.amount)), str(our.amount)),
    )
    return [f"{what} {old} → {new}" for what, old, new in pairs if old != new]


def _plain(value: Decimal) -> str:
    """A quantity as people write it: ``20``, ``2.5``."""
    return format(value.normalize(), "f")


def _rate(value: Decimal) -> str:
    return _plain(value.quantize(RATE_PLACES, rounding=ROUND_HALF_UP))


def _percent(value: Decimal) -> str:
    return f"{value.quantize(PERCENT_PLACES, rounding=ROUND_HALF_UP)}%"
