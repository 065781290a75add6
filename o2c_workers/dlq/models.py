"""What a dead letter holds."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Status(StrEnum):
    OPEN = "open"
    #: Claimed by a requeue that publishes to RabbitMQ and has not marked it requeued yet:
    #: in progress, or the requeue died after its claim (``o2c dlq requeue --reclaim``).
    REQUEUING = "requeuing"
    REQUEUED = "requeued"
    RESOLVED = "resolved"
    PURGED = "purged"

    @property
    def closed(self) -> bool:
        """Closed entries have left the queue and expire after the retention."""
        return self not in (Status.OPEN, Status.REQUEUING)


def new_id() -> str:
    """Sortable by creation time, unique across the fleet."""
    return f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:10]}"


class DeadLetter(BaseModel):
    """One transaction step that could not finish, with everything needed to retry it."""

    id: str = Field(default_factory=new_id)
    trace_key: str
    domain: str
    #: The Celery task to requeue, or None when the entry came from the receiver unrouted.
    task: str | None = None
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: The steps that were to follow ``task`` (a chain), in order.
    chain: list[str] = Field(default_factory=list)
    #: The original message or record, as it arrived (secrets redacted).
    payload: Any = None
    error_class: str
    category: str
    message: str
    remediation: str = ""
    attempts: int = 1
    first_failed_at: float = Field(default_factory=time.time)
    last_failed_at: float = Field(default_factory=time.time)
    traceback: str | None = None
    status: Status = Status.OPEN
    source: str = "worker"
    #: Set when a later success resolved it, or a requeue sent it on.
    resolved_by: str | None = None
    requeued_task_id: str | None = None
    #: Who claimed it for a requeue to RabbitMQ (``actor:random``), and when (epoch s).
    requeue_claim: str | None = None
    requeue_claimed_at: float | None = None
    #: The payload as first stored, when an edit changed it.
    original_payload: Any = None
    #: Bumped by every change; writes compare-and-set on it (optimistic concurrency).
    rev: int = 1
    #: When each state was reached (epoch s).
    requeued_at: float | None = None
    resolved_at: float | None = None
    purged_at: float | None = None
    edited_at: float | None = None
