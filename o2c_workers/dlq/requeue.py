"""What a requeue puts back on a queue, and the planner contract that decides it.

The DLQ does not know how a message is routed: its operations take a ``Planner``. The
fleet's planner (``o2c_workers.receiver.replan``) turns a worker entry into its task with
its arguments and the rest of its chain, and a receiver entry into what the receiver's own
planning makes of its stored (maybe edited) notification or ERP event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from o2c_workers.atomic import Op
from o2c_workers.dlq.models import DeadLetter
from o2c_workers.enqueue import TaskMessage


@dataclass(frozen=True)
class RequeuePlan:
    """The message that puts the work back, and the trace key it belongs to."""

    message: TaskMessage
    task: str
    trace_key: str

    @property
    def push(self) -> Op:
        return self.message.push_op()

    @property
    def task_id(self) -> str:
        return self.message.task_id

    @property
    def queue(self) -> str:
        return self.message.queue

    def describe(self) -> dict[str, Any]:
        return {"task": self.task, "task_id": self.task_id, "queue": self.queue,
                "trace_key": self.trace_key}


class Publisher(Protocol):
    """Publishes task messages and returns once the broker confirms them all, or raises
    (``o2c_workers.amqp.publish.Publisher``: RabbitMQ)."""

    def publish(self, messages: Sequence[TaskMessage]) -> None: ...


class Planner(Protocol):
    def plan(self, entry: DeadLetter, *, now: float) -> RequeuePlan:
        """The requeue of ``entry``; ``Refused`` when it cannot go ahead."""

    def validate(self, entry: DeadLetter, payload: Any) -> None:
        """Refuse an edited payload that the requeue could not read (``InvalidEdit``)."""
