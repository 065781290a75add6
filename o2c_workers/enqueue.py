"""Put task messages on their queues atomically with the state that goes with them.

Celery's ``apply_async`` publishes one message per round trip and cannot be tied to our own
writes. For a Redis broker we write the message exactly as kombu's Redis transport does (a
JSON envelope LPUSHed on the queue's list) inside one Lua script together with the dedupe
mark or the dead-letter update it belongs to: either all of it happens or none of it.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery
from kombu.utils.json import dumps as kombu_dumps

from o2c_workers.celery_app import domain_of

Op = list[Any]

#: One guarded batch of writes per item. Guards:
#:   mark   - skip if KEY exists; else run the ops, then SET KEY with a TTL (the dedupe mark
#:            is written last, so a failed op leaves nothing that would hide a resend);
#:   hfield - run the ops only if HGET KEY FIELD equals VALUE (a compare-and-set);
#:   always - run the ops.
_SCRIPT = """
local ttl = tonumber(ARGV[1])
local items = cjson.decode(ARGV[2])
local out = {}
for i, item in ipairs(items) do
  local guard = item[1]
  local ok = true
  if guard[1] == 'mark' then
    ok = redis.call('EXISTS', guard[2]) == 0
  elseif guard[1] == 'hfield' then
    ok = redis.call('HGET', guard[2], guard[3]) == guard[4]
  end
  if ok then
    for _, op in ipairs(item[2]) do
      redis.call(unpack(op))
    end
    if guard[1] == 'mark' then
      redis.call('SET', guard[2], '1', 'EX', ttl)
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""


@dataclass
class Item:
    """Writes that happen together, or not at all, under one guard."""

    guard: list[Any]
    ops: list[Op] = field(default_factory=list)

    @classmethod
    def unless_marked(cls, mark_key: str, ops: list[Op]) -> Item:
        return cls(["mark", mark_key], ops)

    @classmethod
    def if_field(cls, key: str, name: str, value: str, ops: list[Op]) -> Item:
        return cls(["hfield", key, name, value], ops)


class AtomicWriter:
    """Runs guarded batches in one round trip; each item is all-or-nothing."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._script = client.register_script(_SCRIPT)

    def run(self, items: Sequence[Item], *, mark_ttl_s: int = 1) -> list[bool]:
        if not items:
            return []
        payload = json.dumps([[item.guard, item.ops] for item in items], default=str)
        result = self._script(keys=[], args=[mark_ttl_s, payload])
        return [bool(flag) for flag in result]


@dataclass(frozen=True)
class TaskMessage:
    task_id: str
    queue: str
    key: str
    envelope: str

    def push_op(self) -> Op:
        return ["LPUSH", self.key, self.envelope]


def task_message(
    app: Celery, task_name: str, *, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
    trace_key: str, then: Sequence[str] = (), task_id: str | None = None,
    key_prefix: str = "",
) -> TaskMessage:
    """A Celery task message as kombu's Redis transport stores it on the queue's list.

    ``then`` names the tasks that follow as a chain; each gets the previous one's result.
    """
    task_id = task_id or str(uuid.uuid4())
    queue = domain_of(task_name)
    chain = [dict(app.signature(name, options={"queue": domain_of(name)}))
             for name in reversed(then)] or None
    message = app.amqp.as_task_v2(
        task_id, task_name, args=list(args), kwargs=kwargs or {}, chain=chain,
        ignore_result=True, origin="o2c-receiver",
    )
    headers = dict(message.headers)
    headers["trace_key"] = trace_key
    body = kombu_dumps(message.body).encode()
    envelope = {
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            **message.properties,
            "delivery_mode": 2,
            # An empty exchange routes by queue name: kombu restores an unacked message to
            # the list named by routing_key after the visibility timeout.
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return TaskMessage(task_id=task_id, queue=queue, key=key_prefix + queue,
                       envelope=json.dumps(envelope))


def is_redis_broker(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))
