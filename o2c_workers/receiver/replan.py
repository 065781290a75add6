"""The fleet's requeue planner, and the DLQ operations wired with it.

A worker entry becomes its task with its arguments and the rest of its chain. A receiver
entry goes through the receiver's own planning again, from its stored (maybe edited) raw
notification or ERP event: if that still does not route, the requeue is refused.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery
from pydantic import ValidationError

from config import Settings
from config.routes import DEFAULT_ROUTES
from o2c_workers import broker
from o2c_workers.celery_app import get_app
from o2c_workers.dlq import DeadLetterStore, ops
from o2c_workers.dlq.errors import InvalidEdit, Refused
from o2c_workers.dlq.models import DeadLetter
from o2c_workers.dlq.requeue import RequeuePlan
from o2c_workers.enqueue import MessageFactory, TaskMessage
from o2c_workers.receiver import records
from o2c_workers.receiver.erp_events import ErpEvent, ErpEventHandler
from o2c_workers.receiver.outbound import OutboundHandler, parse_notification
from o2c_workers.receiver.soap import BadMessage
from o2c_workers.runtime import connect


class Replanner:
    """Plans requeues with the fleet's message factory and the receiver's handlers."""

    def __init__(self, messages: MessageFactory, *, outbound: OutboundHandler | None = None,
                 erp_events: ErpEventHandler | None = None) -> None:
        self.messages = messages
        self.outbound = outbound
        self.erp_events = erp_events

    def plan(self, entry: DeadLetter, *, now: float) -> RequeuePlan:
        if entry.task:
            return self._worker(entry)
        payload = entry.payload if isinstance(entry.payload, dict) else {}
        if isinstance(payload.get("raw"), str):
            return self._notification(payload, now=now)
        if {"doctype", "event", "name"} <= payload.keys():
            return self._erp_event(payload, now=now)
        raise Refused("the entry names no task and holds no notification or ERP event to "
                      "route again")

    def validate(self, entry: DeadLetter, payload: Any) -> None:
        """A stored notification must still parse, and a record still validate."""
        if not isinstance(payload, dict):
            return
        if entry.source == "receiver" and "raw" in (entry.payload or {}):
            raw = payload.get("raw")
            if not isinstance(raw, str):
                raise InvalidEdit("raw: the notification XML is required")
            try:
                _, n = parse_notification(raw, str(payload.get("organization_id") or ""))
            except BadMessage as exc:
                raise InvalidEdit(f"raw: the notification does not parse: {exc}") from None
            sobject_type, fields = n.sobject_type, n.fields
        elif isinstance(payload.get("record"), dict):
            sobject_type, fields = str(payload.get("sobject_type") or ""), payload["record"]
        else:
            return
        try:
            records.validate_record(sobject_type, fields)
        except records.ValidationError as exc:
            raise InvalidEdit(f"{sobject_type or 'record'} does not validate: "
                              f"{records.describe_errors(exc)}") from None

    def _worker(self, entry: DeadLetter) -> RequeuePlan:
        assert entry.task is not None
        try:
            msg = self.messages.build(entry.task, args=entry.args, kwargs=entry.kwargs,
                                      trace_key=entry.trace_key, then=entry.chain,
                                      argsrepr=f"<requeue of dead letter {entry.id}>")
        except ValueError as exc:
            raise Refused(f"cannot requeue task {entry.task!r}: {exc}") from None
        return RequeuePlan(msg, entry.task, entry.trace_key)

    def _notification(self, payload: dict[str, Any], *, now: float) -> RequeuePlan:
        if self.outbound is None:
            raise Refused("no receiver planning available to route a notification")
        try:
            planned = self.outbound.replan(payload["raw"],
                                           str(payload.get("organization_id") or ""), now=now)
        except BadMessage as exc:
            raise Refused(f"the stored notification does not parse: {exc}") from None
        return _from_receiver(planned.outcome, planned.message, planned.trace_key,
                              planned.detail)

    def _erp_event(self, payload: dict[str, Any], *, now: float) -> RequeuePlan:
        if self.erp_events is None:
            raise Refused("no receiver planning available to route an ERP event")
        try:
            event = ErpEvent.model_validate(payload)
        except ValidationError as exc:
            raise Refused(f"the stored ERP event is incomplete: {exc.error_count()} error(s)") \
                from None
        planned = self.erp_events.plan(event, now=now)
        return _from_receiver(planned.outcome, planned.message, planned.trace_key,
                              f"{event.doctype} {event.event}")


def _from_receiver(outcome: str, message: TaskMessage | None, trace_key: str,
                   detail: str | None) -> RequeuePlan:
    if outcome != "enqueued" or message is None:
        raise Refused(f"still {outcome}: {detail}" if detail else f"still {outcome}")
    return RequeuePlan(message, message.task, trace_key)


def build_dlq(settings: Settings, *, client: redis.Redis | None = None,
              celery_app: Celery | None = None, actor: str = "ops") -> ops.Dlq:
    """The DLQ operations from ``O2C_REDIS_URL`` / ``O2C_KEY_PREFIX``, with the fleet's
    planner (the receiver's routing)::

        dlq = build_dlq(load_settings(), actor="nightly-script")
        report = ops.requeue(dlq, where=Filter.build(category="exhausted", since="1d"))
    """
    celery_app = celery_app or get_app()
    client = client or connect(settings.redis_url, retries=1)
    store = DeadLetterStore(client, prefix=settings.key_prefix,
                            retention_s=settings.dlq_retention_s)
    transport = celery_app.conf.broker_transport_options or {}
    outbound = OutboundHandler(settings, celery_app=celery_app, dead_letters=store,
                               routes=DEFAULT_ROUTES,
                               queue_prefix=str(transport.get("global_keyprefix", "")))
    erp = ErpEventHandler(settings, messages=outbound.messages, dead_letters=store)
    return ops.Dlq(store, Replanner(outbound.messages, outbound=outbound, erp_events=erp),
                   actor, publisher=broker.publisher(settings))
