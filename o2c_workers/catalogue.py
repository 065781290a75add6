"""Every dead-letter category, in one table: whose it is to fix, how, and whether it is
operational (the fleet or a far side is broken) or a business refusal (the data is wrong).

The services, the ERP mapping, the receiver, the base task, the error tree, Sentry and the
README's table all read this; a test holds the README to it.
"""

from __future__ import annotations

from dataclasses import dataclass

CREDIT_HOLD = "credit_hold"
TAX_CONFIGURATION = "tax_configuration"
UNKNOWN_ITEM = "unknown_item"
PRICE_MISMATCH = "price_mismatch"
DISCOUNT_POLICY = "discount_policy"
AMOUNT_MISMATCH = "amount_mismatch"
RECONCILIATION = "reconciliation"
ERP_VALIDATION = "erp_validation"
BUSINESS = "business"
INVALID_PAYLOAD = "invalid_payload"
UNROUTED = "unrouted"
EXHAUSTED = "exhausted"
THROTTLED = "throttled"
TIMEOUT = "timeout"
WORKER_LOST = "worker_lost"
DELIVERY_LIMIT = "delivery_limit"
AUTH = "auth"
NOT_FOUND = "not_found"
UNEXPECTED = "unexpected"
CANCELLATION_AFTER_INVOICE = "cancellation_after_invoice"
AMENDMENT_REQUIRED = "amendment_required"
ERP_CONFIGURATION = "erp_configuration"

FINANCE = "Finance"
SALES_OPS = "Sales ops"
MASTER_DATA = "Master data"
FINANCE_OR_MASTER_DATA = "Finance / master data"
INTEGRATION = "Integration team"
ERP_ADMINS = "ERP admins"


@dataclass(frozen=True)
class Category:
    name: str
    team: str
    #: What the team does, ending with when to requeue.
    action: str
    #: The fleet or a far side is broken (always reported to Sentry), not the data.
    operational: bool = False

    @property
    def remediation(self) -> str:
        """The hint a dead letter carries: the team, then what it does."""
        return f"{self.team}: {self.action}"


_TABLE = (
    Category(CREDIT_HOLD, FINANCE, "release the customer's credit hold or raise its credit "
             "limit in the ERP, then requeue."),
    Category(TAX_CONFIGURATION, FINANCE_OR_MASTER_DATA, "add a Tax Rule (and its Sales Taxes "
             "and Charges Template) for the billing country in the ERP, or set the "
             "customer's country, then requeue."),
    Category(UNKNOWN_ITEM, MASTER_DATA, "create the Item (and its prices) in the ERP, or "
             "correct the product code in Salesforce, then requeue."),
    Category(PRICE_MISMATCH, SALES_OPS, "align the opportunity's prices, discounts and "
             "currency with the ERP price list (or have the Item Price set up), then requeue."),
    Category(DISCOUNT_POLICY, SALES_OPS, "get the discount approved (or lowered) in "
             "Salesforce, then requeue."),
    Category(AMOUNT_MISMATCH, SALES_OPS, "make the opportunity's amount match its products in "
             "Salesforce, then requeue."),
    Category(RECONCILIATION, FINANCE, "compare the ERP document (order or invoice) with the "
             "opportunity and its order, correct the one that is wrong, then requeue."),
    Category(ERP_VALIDATION, INTEGRATION, "the ERP refused the document; read its message, "
             "fix the mapping or the data, then requeue."),
    Category(BUSINESS, SALES_OPS, "correct the opportunity in Salesforce, then requeue."),
    Category(INVALID_PAYLOAD, INTEGRATION, "correct the record or the outbound message fields "
             "in Salesforce; edit the payload and requeue if needed."),
    Category(UNROUTED, INTEGRATION, "add a route for this message, or stop sending it (the "
             "Salesforce outbound message or the ERP webhook)."),
    Category(EXHAUSTED, INTEGRATION, "the far side kept failing; check its health, then "
             "requeue.", operational=True),
    Category(THROTTLED, INTEGRATION, "the far side kept asking us to slow down; check the "
             "configured limits, then requeue.", operational=True),
    Category(TIMEOUT, INTEGRATION, "the step hung past its hard time limit (is the ERP or "
             "Salesforce answering?); requeue once it is.", operational=True),
    Category(WORKER_LOST, INTEGRATION, "the step killed the worker process running it "
             "O2C_MAX_WORKER_LOST times in a row (out of memory, a crash in a native library, "
             "a kill from outside); read the exit in the message and the worker's logs, fix "
             "the cause, then requeue.", operational=True),
    Category(DELIVERY_LIMIT, INTEGRATION, "RabbitMQ handed the message out x-delivery-limit "
             "times without an ack (its worker or its connection kept dying, or Celery "
             "rejected it) and dead-lettered it; read the message and the worker's logs, fix "
             "the cause, then requeue.", operational=True),
    Category(AUTH, INTEGRATION, "renew or correct the ERP or Salesforce credentials, then "
             "requeue.", operational=True),
    Category(NOT_FOUND, INTEGRATION, "a record the step needs is missing in the ERP or "
             "Salesforce; restore it, then requeue."),
    Category(UNEXPECTED, INTEGRATION, "a defect; see the traceback, fix it, then requeue.",
             operational=True),
    Category(CANCELLATION_AFTER_INVOICE, FINANCE, "the opportunity was lost or re-opened "
             "after its ERP order was invoiced or delivered, so the order was not cancelled; "
             "credit the invoice (or return the goods) and cancel the order in the ERP, or "
             "win the opportunity again, then requeue."),
    Category(AMENDMENT_REQUIRED, FINANCE, "the won opportunity changed (the message says "
             "what) after its ERP order was invoiced or delivered; amend the order in the ERP "
             "(credit and re-invoice) or change the opportunity back, then requeue."),
    Category(ERP_CONFIGURATION, ERP_ADMINS, "make salesforce_id a unique field of the DocType "
             "the message names (Customize Form, or its Custom Field: Unique; remove any "
             "duplicate values first), or let the integration user read Custom Field, then "
             "requeue.", operational=True),
)

#: Every category by name.
CATEGORIES: dict[str, Category] = {c.name: c for c in _TABLE}


def remediation(category: str) -> str:
    """The hint for ``category``; an unknown one sends people to the traceback."""
    found = CATEGORIES.get(category)
    if found is None:
        return f"{INTEGRATION}: inspect the traceback; requeue once the cause is fixed."
    return found.remediation


def is_operational(category: str) -> bool:
    found = CATEGORIES.get(category)
    return found is not None and found.operational

