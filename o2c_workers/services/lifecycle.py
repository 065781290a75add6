"""An opportunity that left Closed Won (lost, or re-opened) after it was booked.

The message only says that something changed: the opportunity is read again, and the ERP.
Still won (a late message, or won again since): nothing here, its own chain books. Not won
and a live order nothing is invoiced or delivered against: the order is cancelled (the
compensating action, ``O2C_CANCEL_ON_LOST``) and the opportunity's current order written
back (the cancelled one, unless it was won again and amended meanwhile); invoiced or
delivered: a dead letter for finance (``cancellation_after_invoice``), the order untouched.

An opportunity lost between its pricing and its order step (whose own message's step
found no order yet, or ran before a redelivered order step) is followed by the order step
(``book``): the follow step notes every stage it reads not won before it looks for orders,
and the order step, once it has booked, reads the stage again when there is such a note
(``services.left``), so a won opportunity is booked with one Salesforce read.
"""

from __future__ import annotations

from dataclasses import dataclass

from o2c_workers.catalogue import CANCELLATION_AFTER_INVOICE, RECONCILIATION
from o2c_workers.chain import ChainContext
from o2c_workers.errors import BusinessError
from o2c_workers.models import ErpOrder
from o2c_workers.services.convert import WON
from o2c_workers.services.left import LeftWon
from o2c_workers.services.orders import (
    Booked,
    Reprice,
    WriteBackFields,
    cancel_unless_downstream,
    current_order,
    order_write,
    submit_order,
)
from o2c_workers.services.ports import ErpAdapter, SalesforceApi, StatusWrites
from o2c_workers.services.pricing import Skipped

#: What ``follow_opportunity`` did.
STILL_WON, NO_ORDER, CANCELLED, KEPT = "still_won", "no_order", "cancelled", "kept"


@dataclass(frozen=True)
class Followed:
    action: str
    #: The opportunity's stage when it was read.
    stage: str
    #: The order acted on (or left alone).
    order: ErpOrder | None = None


def follow_opportunity(opportunity_id: str, *, sf: SalesforceApi, out: StatusWrites,
                       erp: ErpAdapter, left: LeftWon, fields: WriteBackFields,
                       cancel_on_lost: bool) -> Followed:
    """The ERP order of an opportunity that is no longer won follows it."""
    stage = str(sf.get_opportunity(opportunity_id).get("StageName") or "")
    if stage == WON:
        return Followed(STILL_WON, stage)
    # Before the orders are looked for: an order step booking meanwhile sees the note.
    left.note(opportunity_id)
    live = [o for o in erp.find_sales_orders(opportunity_id) if o.live]
    if not live:
        return Followed(NO_ORDER, stage)
    if len(live) > 1:
        raise BusinessError(f"the opportunity is {stage} and has {len(live)} live ERP orders "
                            f"({', '.join(o.name for o in live)})", category=RECONCILIATION)
    order = live[0]
    if order.downstream:
        raise cancellation_after_invoice(order, stage)
    if not cancel_on_lost:
        return Followed(KEPT, stage, order)
    cancelled = cancel_unless_downstream(erp, order,
                                         lambda now: cancellation_after_invoice(now, stage))
    # The opportunity's current order, read after the cancel: a cancel answered late (a
    # lost answer, retried) may come after the opportunity was won again and its
    # amendment written back, which the cancelled order must not overwrite.
    current = current_order(erp.find_sales_orders(opportunity_id)) or cancelled
    out.accept([order_write(opportunity_id, current, fields)])
    return Followed(CANCELLED, stage, cancelled)


def book(ctx: ChainContext, *, sf: SalesforceApi, out: StatusWrites, erp: ErpAdapter,
         left: LeftWon, reprice: Reprice, fields: WriteBackFields,
         cancel_on_lost: bool) -> Booked | Skipped | Followed:
    """The order step: the opportunity's one live order (``submit_order``), then, if it
    was seen no longer won (``left``), its stage read once more. No longer won: the order
    follows it as a lost one's does (``Followed``: cancelled, or finance's dead letter), so
    that a lost opportunity never keeps an order booked while it was being lost. A linked
    order too: the run that booked it may have failed before it looked."""
    booked = submit_order(ctx, erp=erp, reprice=reprice)
    if isinstance(booked, Skipped):
        return booked
    if not left.seen(ctx.trace_key):
        return booked
    followed = follow_opportunity(ctx.trace_key, sf=sf, out=out, erp=erp, left=left,
                                  fields=fields, cancel_on_lost=cancel_on_lost)
    return booked if followed.action in (STILL_WON, KEPT) else followed


def cancellation_after_invoice(order: ErpOrder, stage: str) -> BusinessError:
    return BusinessError(
        f"the opportunity is {stage}, but its ERP order {order.name} is "
        f"{order.per_billed.normalize():f}% billed and {order.per_delivered.normalize():f}% "
        "delivered, so it was not cancelled", category=CANCELLATION_AFTER_INVOICE)
