"""The dead-letter queue: every transaction step that cannot finish, with its context."""

from o2c_workers.dlq.models import DeadLetter, Status
from o2c_workers.dlq.store import DeadLetterStore

__all__ = ["DeadLetter", "DeadLetterStore", "Status"]
