"""What an operation on the dead-letter queue refuses, with the HTTP status the API answers."""

from __future__ import annotations

from o2c_workers.errors import O2CError


class DlqError(O2CError):
    """The dead-letter operations' errors; ``status`` is the API's answer."""

    status: int | None = 400

    def __init__(self, message: str) -> None:
        super().__init__(message, status=type(self).status)


class BadFilter(DlqError):
    """A filter value that cannot be understood (an unknown status, an unreadable age)."""


class EntryNotFound(DlqError):
    """No dead letter has that id."""

    status = 404


class Conflict(DlqError):
    """The entry is not in a state that allows this, or changed meanwhile."""

    status = 409


class InvalidEdit(DlqError):
    """The edited payload does not validate; nothing was saved."""

    status = 422


class Refused(DlqError):
    """A requeue that cannot go ahead (still unrouted, still invalid, no task)."""

    status = 409


class NotPublished(DlqError):
    """The broker did not confirm a requeue's message; the message says where the entry is."""

    status = 503


class LeftRequeuing(DlqError):
    """A requeue's message is on its queue, but marking the entry requeued failed: it is
    left ``requeuing`` for an operator (``--reclaim``)."""

    status = 503
