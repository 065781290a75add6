"""Build task messages as Celery publishes them: protocol-2 headers, a JSON body.

Celery's ``apply_async`` publishes one message per round trip and cannot be tied to our own
writes. For a Redis broker we write the message (a JSON envelope LPUSHed on the queue's
list, exactly as kombu's Redis transport stores it) inside one guarded batch
(``o2c_workers.atomic``) together with the dedupe mark or the dead-letter update it belongs
to: either all of it happens or none of it. For RabbitMQ the same headers and body are
published with confirms (``o2c_workers.amqp.publish``) before the batch runs.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from celery import Celery

from o2c_workers.atomic import Op
from o2c_workers.domains import domain_of


@dataclass(frozen=True)
class TaskMessage:
    """One task message: ``envelope`` for a Redis queue's list (``key``); ``headers`` and
    ``body`` (the JSON of ``[args, kwargs, embed]``) for RabbitMQ."""

    task: str
    task_id: str
    queue: str
    key: str
    envelope: str
    headers: dict[str, Any] = field(default_factory=dict, compare=False)
    body: bytes = b""

    def push_op(self) -> Op:
        return ["LPUSH", self.key, self.envelope]


class MessageFactory:
    """Builds task messages as Celery would publish them (``TaskMessage``).

    Celery writes the protocol-2 headers once per task and chain (``as_task_v2``); each
    message then only changes its ids, arguments and trace key.
    """

    def __init__(self, app: Celery, *, key_prefix: str = "") -> None:
        self.app = app
        self.key_prefix = key_prefix
        self._templates: dict[tuple[str, tuple[str, ...]], tuple[dict[str, Any], Any]] = {}

    def _template(self, task_name: str, then: tuple[str, ...]) -> tuple[dict[str, Any], Any]:
        key = (task_name, then)
        if key not in self._templates:
            chain = [dict(self.app.signature(name, options={"queue": domain_of(name)}))
                     for name in reversed(then)] or None
            message = self.app.amqp.as_task_v2(
                "template", task_name, args=[], kwargs={}, chain=chain, ignore_result=True,
                origin="o2c-receiver", argsrepr="()", kwargsrepr="{}",
            )
            self._templates[key] = (dict(message.headers), message.body[2])
        return self._templates[key]

    def build(self, task_name: str, *, args: Sequence[Any] = (),
              kwargs: dict[str, Any] | None = None, trace_key: str,
              then: Sequence[str] = (), task_id: str | None = None,
              argsrepr: str | None = None, retries: int = 0,
              headers: dict[str, Any] | None = None) -> TaskMessage:
        """``then`` names the tasks that follow as a chain; each gets the previous result.

        ``argsrepr`` is what Flower shows for the arguments (default: the trace key), so
        payloads with personal data never reach the monitor. ``headers`` are more message
        headers for this task only (a worker of an older release ignores them).
        """
        task_id = task_id or str(uuid.uuid4())
        queue = domain_of(task_name)
        template, embed = self._template(task_name, tuple(then))
        headers = {**template, "id": task_id, "root_id": task_id, "retries": retries,
                   "argsrepr": argsrepr or f"({trace_key!r},)", "trace_key": trace_key,
                   **(headers or {})}
        body = orjson.dumps([list(args), kwargs or {}, embed])
        envelope = {
            "body": base64.b64encode(body).decode("ascii"),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                "correlation_id": task_id,
                "reply_to": "",
                "delivery_mode": 2,
                # An empty exchange routes by queue name: kombu restores an unacked message
                # to the list named by routing_key after the visibility timeout.
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": task_id,
            },
        }
        return TaskMessage(task=task_name, task_id=task_id, queue=queue,
                           key=self.key_prefix + queue, envelope=orjson.dumps(envelope).decode(),
                           headers=headers, body=body)
