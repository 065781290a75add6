"""Taking a Salesforce record in: what a notification and a sweep write alike.

Both start a route's chain with the same payload and the same trace key (the record's id),
in one guarded write whose marks say what was taken in. The receiver marks the Notification
Id; both mark the record's version (its ``LastModifiedDate``), so a sweep and a late
notification of the same save start one chain between them, whichever comes first, while a
later save (a re-win, an edit) is a new version and starts again.

Salesforce stamps ``LastModifiedDate`` to the second, so two saves in one second (lost and
won again by a flow) share a version. A notification therefore gives way only to a sweep's
mark, never to another notification's: each save's notification has an Id of its own and
starts its chain, and a sweep gives way to either.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from config.routes import Route
from o2c_workers import keys, timeline
from o2c_workers.atomic import Op
from o2c_workers.enqueue import MessageFactory, TaskMessage
from o2c_workers.receiver.records import SObject


def version_of(record: SObject) -> str | None:
    """The record's version: its ``LastModifiedDate`` in epoch milliseconds, or None when
    the record does not carry it (an outbound message defined without the field)."""
    stamp = record.LastModifiedDate
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return str(round(stamp.timestamp() * 1000))


def version_marks(prefix: str, trace_key: str, record: SObject) -> dict[str, str]:
    """The dedupe keys of this version of the record, by who took it in (``keys.SWEPT``,
    ``keys.NOTIFIED``); none when it has no version."""
    version = version_of(record)
    if not version:
        return {}
    return {by: keys.dedupe_record(prefix, trace_key, version, by)
            for by in (keys.SWEPT, keys.NOTIFIED)}


def start_chain(messages: MessageFactory, prefix: str, route: Route, record: SObject, *,
                trace_key: str, context: dict[str, Any], now: float, event: str,
                argsrepr: str, headers: dict[str, Any] | None = None,
                **details: Any) -> tuple[TaskMessage, list[Op]]:
    """The route's first task message, and the timeline entry ``event`` that opens the
    transaction: one guarded write enqueues the message (``Item.messages``) with them.

    ``context`` holds what the chain's context knows of where the record came from
    (``notification_id``, ``organization_id``, ``action_id``, ``sobject_type``).
    """
    payload: dict[str, Any] = {
        "trace_key": trace_key,
        **context,
        "route": route.name,
        "received_at": now,
        "record": record.model_dump(mode="json", exclude_none=True),
    }
    msg = messages.build(route.tasks[0], args=[payload], trace_key=trace_key,
                         then=route.tasks[1:], argsrepr=argsrepr, headers=headers)
    # The first step stamps the "won" milestone from received_at; the writes here are the
    # few that must be atomic with the enqueue.
    ops: list[Op] = timeline.record_ops(
        prefix, trace_key, event, at=now, route=route.name, task_id=msg.task_id, **details)
    return msg, ops
