"""What RabbitMQ dead-lettered to ``o2c.dead``, filed as a dead letter with its context.

A quorum queue dead-letters a message past its ``x-delivery-limit`` (reason
``delivery_limit``), one Celery rejected without requeue (``rejected``: an unregistered
task, a message it cannot decode), and one whose ``expires`` passed in the queue
(``expired``). The message keeps Celery's headers and body, so the entry holds what the base
task's own dead letters hold: the task, its exact arguments and the rest of its chain, the
trace key, and how many times it was handed out.

The two counters agree: the base task's count of runs that died (``o2c_workers.poison``,
``O2C_MAX_WORKER_LOST``, 3) files a poison message ``worker_lost`` and acks it long before
RabbitMQ's limit (20), so RabbitMQ dead-letters only what that count could not see (returns
with Redis unreachable, connections that kept dying, a count set at or above the limit).
When the count did see the runs die, the entry is ``worker_lost`` with the exit it noted,
and the count is dropped, as the base task drops it when it files.

An entry's id comes from the death (its time and the task id), so a message delivered again
after a crash between the write and the ack is not filed twice.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from o2c_workers import catalogue, metrics, poison, timeline
from o2c_workers.dlq import DeadLetter, DeadLetterStore
from o2c_workers.signals import TRACE_HEADER

log = logging.getLogger("o2c.amqp.dead")

#: x-death reasons (RabbitMQ's words).
DELIVERY_LIMIT = "delivery_limit"
REJECTED = "rejected"
EXPIRED = "expired"


@dataclass(frozen=True)
class Death:
    """The first x-death of a message: why, from which queue, when, how often."""

    reason: str
    queue: str
    at: float
    count: int

    @classmethod
    def of(cls, headers: Mapping[str, Any]) -> Death:
        deaths = headers.get("x-death") or [{}]
        first = deaths[-1] if isinstance(deaths, list) else {}
        at = first.get("time")
        return cls(
            reason=str(first.get("reason") or headers.get("x-first-death-reason") or "unknown"),
            queue=str(first.get("queue") or headers.get("x-first-death-queue") or "unknown"),
            at=at.timestamp() if isinstance(at, datetime) else float(at or time.time()),
            count=int(first.get("count") or 1))


def entry_id(death: Death, task_id: str) -> str:
    """Sortable like every entry's id, and the same for the same death of the same task."""
    return f"{int(death.at * 1000):013d}-{hashlib.sha256(task_id.encode()).hexdigest()[:10]}"


def deliveries(headers: Mapping[str, Any]) -> int | None:
    """How many times RabbitMQ handed the message out, when it says so."""
    count = headers.get("x-delivery-count")
    return int(count) + 1 if isinstance(count, int) else None


def chain_of(embed: Any) -> list[str]:
    chain = embed.get("chain") if isinstance(embed, dict) else None
    return [str(sig.get("task")) for sig in reversed(chain or []) if isinstance(sig, dict)]


def build_entry(client: redis.Redis, prefix: str, headers: Mapping[str, Any], body: Any,
                *, now: float | None = None) -> DeadLetter | None:
    """The dead letter of a message RabbitMQ dead-lettered; None when it is to be dropped
    (its ``expires`` passed: a sweep superseded by the next one)."""
    death = Death.of(headers)
    if death.reason == EXPIRED:
        return None
    task = str(headers.get("task") or "")
    task_id = str(headers.get("id") or headers.get("correlation_id") or "")
    # Celery's protocol 2 body: [args, kwargs, embed] (embed: callbacks, the chain, ...).
    args, kwargs, embed = [*body, [], {}, {}][:3] if isinstance(body, list) else [[body], {}, {}]
    args = list(args or [])
    payload = args[0] if len(args) == 1 else args
    from_args = payload.get("trace_key") if isinstance(payload, dict) else None
    trace_key = str(headers.get(TRACE_HEADER) or from_args or f"task:{task_id}")
    handed_out = deliveries(headers)
    runs = poison.peek(client, prefix, task_id) if task_id else None
    category, error_class, message = describe(death, handed_out, runs)
    now = time.time() if now is None else now
    parts = task.split(".")
    return DeadLetter(
        id=entry_id(death, task_id or trace_key),
        trace_key=trace_key,
        domain=parts[1] if len(parts) > 2 and parts[0] == "o2c" else death.queue,
        task=task or None,
        args=args,
        kwargs=dict(kwargs or {}),
        chain=chain_of(embed),
        payload=payload,
        error_class=error_class,
        category=category,
        message=message,
        remediation=catalogue.remediation(category),
        attempts=handed_out or (runs.lost if runs else 0) or int(headers.get("retries") or 0) + 1,
        first_failed_at=death.at,
        last_failed_at=now,
        source="broker",
    )


def describe(death: Death, handed_out: int | None,
             runs: poison.Runs | None) -> tuple[str, str, str]:
    """Category, error class and message of a death."""
    times = f" after {handed_out} deliveries" if handed_out else ""
    where = f"RabbitMQ dead-lettered it from queue {death.queue!r} ({death.reason}){times}"
    if death.reason == DELIVERY_LIMIT and runs is not None and runs.last_exit:
        return (catalogue.WORKER_LOST, "WorkerLost",
                f"{where}: the process running this step was lost {runs.lost} times "
                f"(last exit: {runs.last_exit}); not run again")
    if death.reason == DELIVERY_LIMIT:
        return (catalogue.DELIVERY_LIMIT, "DeliveryLimit",
                f"{where}: handed out that many times without an ack (its worker or its "
                "connection died, or it was handed back); not run again")
    return (catalogue.UNEXPECTED, "Rejected",
            f"{where}: a worker refused it (an unregistered task or a message it cannot "
            "read); not run")


def file(store: DeadLetterStore, headers: Mapping[str, Any], body: Any) -> DeadLetter | None:
    """File the message (the caller acks once this returns); None: dropped, nothing filed.
    Raises what Redis raises: the caller keeps the message and tries again."""
    client, prefix = store.client, store.prefix
    entry = build_entry(client, prefix, headers, body)
    if entry is None:
        log.info("dropped an expired message of %s", headers.get("task"),
                 extra={"task_id": headers.get("id")})
        return None
    if store.get(entry.id) is not None:
        log.info("already filed: %s", entry.id, extra={"dead_letter": entry.id})
        return entry
    store.add(entry)
    timeline.record(client, prefix, entry.trace_key, "dead_lettered", task=entry.task,
                    category=entry.category, dead_letter=entry.id, error=entry.error_class)
    task_id = headers.get("id")
    if task_id:
        poison.finished(client, prefix, str(task_id))
    log.warning("dead-lettered by RabbitMQ: %s", entry.message, extra={
        "category": entry.category, "dead_letter": entry.id, "trace_key": entry.trace_key,
        "attempts": entry.attempts})
    metrics.dead_letter(entry.domain, entry.category)
    return entry

