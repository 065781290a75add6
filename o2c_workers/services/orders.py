"""Order submission (at most one live order per opportunity) and the write-back to Salesforce.

``submit_order`` books what the opportunity is now, against what the ERP holds now:

* no order yet: create the first (keyed by the opportunity id);
* a live order (submitted, not closed) that agrees in full: link it;
* a live order that differs: read the opportunity again (the order may be a newer chain's,
  booked from what the opportunity is now); still different, with nothing invoiced or
  delivered: cancel it and book its amendment (``amended_from``, the next revision key);
  invoiced or delivered: refuse (``amendment_required``), naming what changed;
* only cancelled orders (cancelled in the ERP, or lost and won again): read the
  opportunity again (it may be lost still), then book the next revision as an amendment
  of the latest;
* a draft or a closed order, or two live ones: refuse (``reconciliation``), people decide.

What it created or linked is checked again (a duplicate answer links whatever holds the
key), and a pricing older than ``REPRICE_AFTER_S`` is read again first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from o2c_workers.catalogue import AMENDMENT_REQUIRED, RECONCILIATION
from o2c_workers.chain import ChainContext
from o2c_workers.erp import revisions
from o2c_workers.errors import NO_SALESFORCE_ID, BusinessError, NotOurs
from o2c_workers.models import ErpOrder
from o2c_workers.services.compare import differences
from o2c_workers.services.ports import ErpAdapter, StatusWrites, Write
from o2c_workers.services.pricing import REPRICE_AFTER_S, Skipped
from o2c_workers.writeback import stamp_of

__all__ = ["REPRICE_AFTER_S", "Booked", "WriteBackFields", "submit_order", "write_back"]
#: How often the step decides again when what it found changed under it.
ROUNDS = 3

#: Reads the opportunity again and prices it (``pricing.validate_order`` bound to clients).
Reprice = Callable[[ChainContext], "ChainContext | Skipped"]

CREATED, LINKED, AMENDED, REBOOKED = "created", "linked", "amended", "rebooked"


@dataclass(frozen=True)
class WriteBackFields:
    """The Salesforce fields the fleet writes (API names, configurable)."""

    customer_number: str = "ERP_Customer_Number__c"
    order_number: str = "ERP_Order_Number__c"
    order_status: str = "ERP_Order_Status__c"
    invoice_status: str = "Invoice_Status__c"
    payment_status: str = "Payment_Status__c"


@dataclass(frozen=True)
class Booked:
    """The chain with its live ERP order, and how it came to be."""

    ctx: ChainContext
    #: ``created``, ``linked``, ``amended`` or ``rebooked``.
    action: str
    #: The cancelled order the booked one amends.
    amended_from: str | None = None

    @property
    def order(self) -> ErpOrder:
        return self.ctx.need_erp_order()


@dataclass(frozen=True)
class _Plan:
    action: str
    #: The live order to link or to replace.
    current: ErpOrder | None = None
    key: str | None = None
    amended_from: str | None = None


def submit_order(ctx: ChainContext, *, erp: ErpAdapter, reprice: Reprice,
                 now: float | None = None) -> Booked | Skipped:
    """Third step: the opportunity's one live order, as the opportunity is now."""
    now = time.time() if now is None else now
    # What this step reads again, it reads from Salesforce: never a read carried from the
    # first step, however fresh.
    ctx = ctx.model_copy(update={"opportunity": None})
    read_again = ctx.pricing is None or (ctx.pricing.priced_at or 0) < now - REPRICE_AFTER_S
    if read_again:
        fresh = reprice(ctx)
        if isinstance(fresh, Skipped):
            return fresh
        ctx = fresh
    for _ in range(ROUNDS):
        plan = decide(ctx, erp)
        if plan.action in (REBOOKED, AMENDED) and not read_again:
            # Its orders are all cancelled (in the ERP, or because it was lost meanwhile), or
            # its live order differs (a newer chain may have booked the opportunity as it is
            # now, and this step is a redelivery of an older one): read the opportunity
            # again before booking it anew or replacing that order, however fresh the
            # pricing.
            fresh, read_again = reprice(ctx), True
            if isinstance(fresh, Skipped):
                return fresh
            ctx = fresh
            plan = decide(ctx, erp)
        booked = carry_out(plan, ctx, erp)
        if booked.live and not differences(ctx.need_order(), ctx.need_customer(), booked):
            return Booked(ctx.model_copy(update={"erp_order": booked}), plan.action,
                          plan.amended_from)
        # What holds the key is not what we meant (another run booked it, or someone
        # changed it since): read the opportunity again; it may be the newer one.
        fresh = reprice(ctx)
        if isinstance(fresh, Skipped):
            return fresh
        ctx = fresh
        if booked.live:
            changes = differences(ctx.need_order(), ctx.need_customer(), booked)
            if changes:
                raise _refusal(RECONCILIATION, f"ERP order {booked.name} holds this "
                               f"opportunity's key but differs from it: {'; '.join(changes)}")
            return Booked(ctx.model_copy(update={"erp_order": booked}), LINKED)
    raise _refusal(RECONCILIATION, f"the ERP orders of {ctx.trace_key} kept changing while "
                   f"an order was booked ({ROUNDS} tries); look at them in the ERP")


def decide(ctx: ChainContext, erp: ErpAdapter) -> _Plan:
    """What to do, from the opportunity's orders in the ERP now."""
    order, customer = ctx.need_order(), ctx.need_customer()
    found = erp.find_sales_orders(order.opportunity_id)
    live = [o for o in found if o.live]
    if len(live) > 1:
        raise _refusal(RECONCILIATION, f"the opportunity has {len(live)} live ERP orders "
                       f"({', '.join(o.name for o in live)}); cancel all but one in the ERP")
    latest = revisions.latest(found)
    if live:
        current = erp.get_sales_order(live[0].name)
        changes = differences(order, customer, current)
        if not changes:
            return _Plan(LINKED, current)
        if current.downstream:
            raise amendment_required(current, changes)
        return _Plan(AMENDED, current, _next_key(latest), current.name)
    blocked = [f"{o.name} is {'Closed' if o.closed else 'a draft'}"
               for o in found if o.docstatus == 0 or o.closed]
    if blocked:
        raise _refusal(RECONCILIATION, f"the opportunity's ERP order {', '.join(blocked)}, "
                       "so no other is booked: re-open (or submit) it, or cancel (or "
                       "delete) it, in the ERP")
    if latest is None:
        return _Plan(CREATED, key=revisions.first(order.opportunity_id).key)
    return _Plan(REBOOKED, key=_next_key(latest), amended_from=latest.name)


def carry_out(plan: _Plan, ctx: ChainContext, erp: ErpAdapter) -> ErpOrder:
    if plan.action == LINKED and plan.current is not None:
        return plan.current
    if plan.action == AMENDED and plan.current is not None:
        cancel_unless_downstream(erp, plan.current, lambda now: amendment_required(
            now, differences(ctx.need_order(), ctx.need_customer(), now)))
    return erp.submit_sales_order(ctx.need_order(), ctx.need_customer(), key=plan.key,
                                  amended_from=plan.amended_from)


def cancel_unless_downstream(erp: ErpAdapter, order: ErpOrder,
                             refusal: Callable[[ErpOrder], BusinessError]) -> ErpOrder:
    """Cancel ``order``; if the ERP refuses because it was invoiced or delivered meanwhile,
    raise ``refusal(order as it is now)`` instead of the ERP's message."""
    try:
        return erp.cancel_sales_order(order.name)
    except BusinessError:
        now = erp.get_sales_order(order.name)
        if now.downstream:
            raise refusal(now) from None
        raise


def amendment_required(order: ErpOrder, changes: list[str]) -> BusinessError:
    return _refusal(AMENDMENT_REQUIRED, f"ERP order {order.name} is {_downstream(order)}, "
                    f"and the won opportunity changed: {'; '.join(changes) or 'see it'}")


def _downstream(order: ErpOrder) -> str:
    return f"{order.per_billed.normalize():f}% billed and " \
           f"{order.per_delivered.normalize():f}% delivered"


def _next_key(latest: ErpOrder | None) -> str:
    assert latest is not None
    return revisions.parse(latest.salesforce_id).next().key


def _refusal(category: str, message: str) -> BusinessError:
    return BusinessError(message, category=category)


def write_back(ctx: ChainContext, *, out: StatusWrites, fields: WriteBackFields) -> None:
    """Last step: the ERP order number and status on the opportunity, the customer number
    on the account, accepted into the outbox (sent with other records' in one call)."""
    booked = ctx.need_erp_order()
    customer = ctx.need_customer()
    out.accept([
        order_write(ctx.trace_key, booked, fields),
        Write("Account", customer.salesforce_id, {fields.customer_number: customer.name},
              stamp=0, trace_key=ctx.trace_key, source=f"Customer {customer.name}"),
    ])


def order_write(opportunity_id: str, order: ErpOrder, fields: WriteBackFields) -> Write:
    """The opportunity's order number and status, as of the order's version."""
    return Write("Opportunity", opportunity_id, {fields.order_number: order.name,
                                                 fields.order_status: order.status},
                 stamp=stamp_of(order.modified), trace_key=opportunity_id,
                 source=f"Sales Order {order.name}")


def opportunity_of_order(order: ErpOrder) -> str:
    """The opportunity the order was booked from; one keyed in the ERP by hand has none."""
    if not order.salesforce_id:
        raise NotOurs(f"Sales Order {order.name} has no salesforce_id: keyed in the ERP, "
                      f"not booked from Salesforce", reason=NO_SALESFORCE_ID)
    return revisions.parse(order.salesforce_id).opportunity_id


def current_order(orders: list[ErpOrder]) -> ErpOrder | None:
    """The order the opportunity shows: its live one, else its latest revision."""
    live = [o for o in orders if o.live]
    return live[0] if len(live) == 1 else revisions.latest(orders)


def sync_status(order_name: str, *, out: StatusWrites, erp: ErpAdapter,
                fields: WriteBackFields, event: Mapping[str, Any] | None = None) -> ErpOrder:
    """The ERP changed an order: write the opportunity's current order number and status
    (an event for a cancelled predecessor never overwrites its amendment's).

    The event's document, when it is the newest version seen and live, is that order
    (an opportunity has one live order): written as it came. Otherwise the order is read,
    and the opportunity's orders, for the current one."""
    carried = erp.order_of_event(event) if event else None
    if carried is not None and carried.live:
        current = carried
        opportunity_id = opportunity_of_order(carried)
    else:
        changed = erp.get_sales_order(order_name)
        opportunity_id = opportunity_of_order(changed)
        current = current_order(erp.find_sales_orders(opportunity_id)) or changed
    out.accept([order_write(opportunity_id, current, fields)])
    return current
