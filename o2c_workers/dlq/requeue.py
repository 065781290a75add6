"""Turn a dead letter back into the message that puts its work on a queue again.

A worker entry becomes its task with its arguments and the rest of its chain. A receiver
entry goes through the receiver's own planning again, from its stored (maybe edited) raw
notification or ERP event: if that still does not route, the requeue is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from o2c_workers.atomic import Op
from o2c_workers.dlq.errors import Refused
from o2c_workers.dlq.models import DeadLetter
from o2c_workers.enqueue import MessageFactory

if TYPE_CHECKING:
    from o2c_workers.receiver.erp_events import ErpEventHandler
    from o2c_workers.receiver.outbound import OutboundHandler


@dataclass(frozen=True)
class RequeuePlan:
    """The LPUSH that puts the work back, and what it carries."""

    push: Op
    task: str
    task_id: str
    queue: str
    trace_key: str

    def describe(self) -> dict[str, Any]:
        return {"task": self.task, "task_id": self.task_id, "queue": self.queue,
                "trace_key": self.trace_key}


def plan_from_push(push: Op) -> RequeuePlan:
    """Read task, id and trace key back out of a kombu message about to be pushed."""
    envelope = orjson.loads(push[2])
    headers = envelope["headers"]
    return RequeuePlan(push=push, task=headers["task"], task_id=headers["id"],
                       queue=envelope["properties"]["delivery_info"]["routing_key"],
                       trace_key=headers["trace_key"])


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

    def _worker(self, entry: DeadLetter) -> RequeuePlan:
        assert entry.task is not None
        try:
            msg = self.messages.build(entry.task, args=entry.args, kwargs=entry.kwargs,
                                      trace_key=entry.trace_key, then=entry.chain,
                                      argsrepr=f"<requeue of dead letter {entry.id}>")
        except ValueError as exc:
            raise Refused(f"cannot requeue task {entry.task!r}: {exc}") from None
        return RequeuePlan(msg.push_op(), entry.task, msg.task_id, msg.queue, entry.trace_key)

    def _notification(self, payload: dict[str, Any], *, now: float) -> RequeuePlan:
        from o2c_workers.receiver.soap import BadMessage

        if self.outbound is None:
            raise Refused("no receiver planning available to route a notification")
        try:
            planned = self.outbound.replan(payload["raw"],
                                           str(payload.get("organization_id") or ""), now=now)
        except BadMessage as exc:
            raise Refused(f"the stored notification does not parse: {exc}") from None
        return self._from_receiver(planned.outcome, planned.item.ops, planned.detail)

    def _erp_event(self, payload: dict[str, Any], *, now: float) -> RequeuePlan:
        from o2c_workers.receiver.erp_events import ErpEvent

        if self.erp_events is None:
            raise Refused("no receiver planning available to route an ERP event")
        try:
            event = ErpEvent.model_validate(payload)
        except ValidationError as exc:
            raise Refused(f"the stored ERP event is incomplete: {exc.error_count()} error(s)") \
                from None
        item, outcome, _ = self.erp_events.plan(event, now=now)
        return self._from_receiver(outcome, item.ops, f"{event.doctype} {event.event}")

    @staticmethod
    def _from_receiver(outcome: str, ops: list[Op], detail: str | None) -> RequeuePlan:
        if outcome != "enqueued":
            raise Refused(f"still {outcome}: {detail}" if detail else f"still {outcome}")
        [push] = [op for op in ops if op[0] == "LPUSH"]
        return plan_from_push(push)
