"""One shallow exception tree. Every error says whether it is retryable, and why."""

from __future__ import annotations

from typing import Any

from o2c_workers import catalogue


class O2CError(Exception):
    """Root of every error the fleet raises on purpose."""

    #: Whether trying again later may succeed.
    retryable: bool = False
    #: The dead-letter category an unrecovered error files under.
    category: str = "error"
    #: Which team fixes it, and how (from the catalogue, by category, unless given).
    remediation: str = catalogue.remediation("error")

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        status: int | None = None,
        body: Any = None,
        retry_after_s: float | None = None,
        category: str | None = None,
        remediation: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or message
        self.status = status
        self.body = body
        self.retry_after_s = retry_after_s
        if category is not None:
            self.category = category
        if remediation is not None:
            self.remediation = remediation
        elif category is not None:
            self.remediation = catalogue.remediation(category)

    def to_dict(self) -> dict[str, Any]:
        return {
            "error_class": type(self).__name__,
            "message": self.message,
            "retryable": self.retryable,
            "category": self.category,
            "remediation": self.remediation,
            "status": self.status,
        }


class Throttled(O2CError):
    """The far side asked us to slow down (429, concurrency exceeded)."""

    retryable = True
    category = catalogue.THROTTLED
    remediation = catalogue.remediation(catalogue.THROTTLED)


class Transient(O2CError):
    """A passing fault: connection refused, timeout before sending, 5xx."""

    retryable = True
    category = catalogue.EXHAUSTED
    remediation = catalogue.remediation(catalogue.EXHAUSTED)


class NotReplicated(Transient):
    """Fewer replicas than asked for confirmed a write in time (``O2C_ENQUEUE_MIN_REPLICAS``):
    the write is on the primary, but may not survive its loss."""

    def __init__(self, *, confirmed: int, wanted: int, timeout_ms: int) -> None:
        super().__init__(f"{confirmed} of {wanted} replica(s) confirmed the write within "
                         f"{timeout_ms} ms", reason="not_replicated")
        self.confirmed = confirmed
        self.wanted = wanted


class UnknownOutcome(Transient):
    """A create was sent and no answer came: look the record up before trying again."""


class Duplicate(O2CError):
    """The record exists already (409 on the unique Salesforce id): link it, carry on."""

    category = "duplicate"


class BusinessError(O2CError):
    """The ERP refused the document on its merits; retrying cannot help."""

    category = catalogue.BUSINESS
    remediation = catalogue.remediation(catalogue.BUSINESS)


class InvalidPayload(O2CError):
    """A message or record that fails validation."""

    category = catalogue.INVALID_PAYLOAD
    remediation = catalogue.remediation(catalogue.INVALID_PAYLOAD)


class AuthError(O2CError):
    """401/403 from the ERP or Salesforce: alert, do not hammer."""

    category = catalogue.AUTH
    remediation = catalogue.remediation(catalogue.AUTH)


class NotFound(O2CError):
    """The far side has no such record."""

    category = catalogue.NOT_FOUND
    remediation = catalogue.remediation(catalogue.NOT_FOUND)


#: Why a document is not ours (``NotOurs.reason``, the ``reason`` label of
#: ``o2c_ignored_total``): an order with no Salesforce id, an invoice made from no order, a
#: payment of no sales invoice.
NO_SALESFORCE_ID = "no_salesforce_id"
NO_SALES_ORDER = "no_sales_order"
NO_SALES_INVOICE = "no_sales_invoice"


class NotOurs(O2CError):
    """Not a failure: the ERP document did not come from Salesforce (keyed in the ERP by
    hand, with its invoices and payments). The step acknowledges it, counts it ignored and
    changes nothing; ``reason`` is one of the constants above."""

    category = "ignored"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, reason=reason)


class WorkerLost(O2CError):
    """The step's earlier runs killed the process running them (a poison message)."""

    category = catalogue.WORKER_LOST
    remediation = catalogue.remediation(catalogue.WORKER_LOST)


class DeadLettered(O2CError):
    """Raised once a step is filed in the dead-letter queue: the task ends as failed (Flower
    shows it so, with its category), its message is acked and nothing retries it. The text
    names the category, the team and the entry, never the data."""

    def __init__(self, *, category: str, error_class: str, dead_letter: str) -> None:
        found = catalogue.CATEGORIES.get(category)
        team = found.team if found is not None else catalogue.INTEGRATION
        super().__init__(f"dead-lettered {category} ({team}): {error_class}; "
                         f"o2c dlq show {dead_letter}", category=category)
        self.error_class = error_class
        self.dead_letter = dead_letter

    def __reduce__(self) -> tuple[Any, ...]:
        # It crosses from a pool process to the worker's main process by pickle, whose
        # default passes the message alone.
        return _dead_lettered, (self.category, self.error_class, self.dead_letter)


def _dead_lettered(category: str, error_class: str, dead_letter: str) -> DeadLettered:
    return DeadLettered(category=category, error_class=error_class, dead_letter=dead_letter)
