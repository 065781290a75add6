"""Where each message goes: a Salesforce notification by sObject type (and Opportunity
stage), an ERP webhook event by DocType and event, to the tasks that handle it.

A route is a chain of task names run in order, each on its domain's queue. A notification
that matches no route is acknowledged and filed as an ``unrouted`` dead letter; a route
with no tasks (``IGNORE``) acknowledges it and records why, for changes we do not act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The O2C chain of a won opportunity (DESIGN.md, "The process").
OPPORTUNITY_WON = (
    "o2c.customer.ensure_customer",
    "o2c.pricing.validate_order",
    "o2c.order.submit_order",
    "o2c.order.write_back",
)


@dataclass(frozen=True)
class Route:
    sobject_type: str
    #: Opportunity stage to match; None matches any stage.
    stage: str | None
    tasks: tuple[str, ...]
    #: Fields this route cannot do without (Salesforce omits null fields).
    required: tuple[str, ...] = ("Id",)
    name: str = field(default="")

    @property
    def ignored(self) -> bool:
        return not self.tasks


#: An opportunity in any other stage (lost, re-opened, moved along): its ERP order follows
#: it (DESIGN.md, "The opportunity's life").
OPPORTUNITY_CHANGED = ("o2c.order.follow_opportunity",)

DEFAULT_ROUTES: tuple[Route, ...] = (
    Route("Opportunity", "Closed Won", OPPORTUNITY_WON, ("Id", "StageName"), "opportunity_won"),
    Route("Opportunity", None, OPPORTUNITY_CHANGED, ("Id", "StageName"),
          "opportunity_changed"),
    Route("Account", None, ("o2c.customer.sync_account",), ("Id",), "account_changed"),
)


#: An ERP webhook event, (DocType, event) → its task. Anything else is ``unrouted``.
ERP_ROUTES: dict[tuple[str, str], str] = {
    ("Sales Invoice", "on_submit"): "o2c.invoice.sync_invoice",
    ("Sales Invoice", "on_update_after_submit"): "o2c.invoice.sync_invoice",
    ("Payment Entry", "on_submit"): "o2c.payment.apply_payment",
    ("Sales Order", "on_update_after_submit"): "o2c.order.sync_status",
    ("Sales Order", "on_cancel"): "o2c.order.sync_status",
}


def match(routes: tuple[Route, ...], sobject_type: str, stage: str | None) -> Route | None:
    """The first route for this type whose stage matches (exact, then any)."""
    for route in routes:
        if route.sobject_type == sobject_type and route.stage is not None and route.stage == stage:
            return route
    for route in routes:
        if route.sobject_type == sobject_type and route.stage is None:
            return route
    return None
