"""Put task messages on their queues atomically with the state that goes with them.

Celery's ``apply_async`` publishes one message per round trip and cannot be tied to our own
writes. For a Redis broker we write the message exactly as kombu's Redis transport does (a
JSON envelope LPUSHed on the queue's list) inside one Lua script together with the dedupe
mark or the dead-letter update it belongs to: either all of it happens or none of it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import redis
from celery import Celery
from redis.connection import Connection
from redis.exceptions import NoScriptError

from o2c_workers.celery_app import domain_of

Op = list[Any]

#: One guarded batch of writes per item. Guards:
#:   mark   - skip if KEY exists; else run the ops, then SET KEY with a TTL (the dedupe mark
#:            is written last, so a failed op leaves nothing that would hide a resend);
#:   hfield - run the ops only if HGET KEY FIELD equals VALUE (a compare-and-set);
#:   always - run the ops.
#: ARGV is flat, so large message bodies are never JSON-encoded twice:
#:   ttl, item count, then per item: guard length, guard..., op count, then per op:
#:   argument count, arguments...
_SCRIPT = """
local ttl = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local pos = 3
local out = {}
for i = 1, count do
  local glen = tonumber(ARGV[pos])
  local guard = {unpack(ARGV, pos + 1, pos + glen)}
  pos = pos + glen + 1
  local ok = true
  if guard[1] == 'mark' then
    ok = redis.call('EXISTS', guard[2]) == 0
  elseif guard[1] == 'hfield' then
    ok = redis.call('HGET', guard[2], guard[3]) == guard[4]
  end
  local nops = tonumber(ARGV[pos])
  pos = pos + 1
  for _ = 1, nops do
    local argc = tonumber(ARGV[pos])
    if ok then
      redis.call(unpack(ARGV, pos + 1, pos + argc))
    end
    pos = pos + argc + 1
  end
  if ok and guard[1] == 'mark' then
    redis.call('SET', guard[2], '1', 'EX', ttl)
  end
  out[i] = ok and 1 or 0
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
    """Runs guarded batches in one round trip; each item is all-or-nothing.

    It keeps its own idle connections, made with the client's connection settings, and
    takes one per call. This is the receiver's hot path: borrowing from redis-py's pool
    costs a readiness poll and pool bookkeeping on every call, about as much CPU as the
    script's round trip itself. A list's ``pop`` and ``append`` are atomic, so threads and
    greenlets share the idle list without a lock.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._sha = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()
        self._idle: list[Connection] = []
        self._pid = os.getpid()

    def _new_connection(self) -> Connection:
        pool = self.client.connection_pool
        return cast(Connection, pool.connection_class(**pool.connection_kwargs))

    def _take(self) -> Connection:
        if self._pid != os.getpid():
            # Connections made before a fork belong to the parent; the child makes its own.
            self._idle, self._pid = [], os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            return self._new_connection()

    def _call(self, conn: Connection, args: list[Any]) -> Any:
        try:
            conn.send_command("EVALSHA", self._sha, 0, *args)  # type: ignore[no-untyped-call]
            return conn.read_response()  # type: ignore[no-untyped-call]
        except NoScriptError:
            # A restarted or flushed Redis has lost the script: EVAL sends it (and caches it).
            conn.send_command("EVAL", _SCRIPT, 0, *args)  # type: ignore[no-untyped-call]
            return conn.read_response()  # type: ignore[no-untyped-call]

    def run(self, items: Sequence[Item], *, mark_ttl_s: int = 1) -> list[bool]:
        if not items:
            return []
        args: list[Any] = [mark_ttl_s, len(items)]
        for item in items:
            args.append(len(item.guard))
            args.extend(item.guard)
            args.append(len(item.ops))
            for op in item.ops:
                args.append(len(op))
                args.extend(op)
        conn = self._take()
        try:
            result = self._call(conn, args)
        except redis.ConnectionError:
            # Idle connections kept across a Redis restart are dead on first use: drop them
            # all and try once more on a new one. Guards make a repeat harmless (a mark or
            # compare-and-set already applied turns it into a no-op; the unguarded items
            # this code writes only remove index entries).
            conn.disconnect()  # type: ignore[no-untyped-call]
            for stale in self._idle[:]:
                stale.disconnect()  # type: ignore[no-untyped-call]
            self._idle.clear()
            conn = self._new_connection()
            try:
                result = self._call(conn, args)
            except BaseException:
                conn.disconnect()  # type: ignore[no-untyped-call]
                raise
        except BaseException:
            # A timeout or an interrupted read leaves the reply unread: never reuse it.
            conn.disconnect()  # type: ignore[no-untyped-call]
            raise
        self._idle.append(conn)
        return [bool(flag) for flag in result]


class _Pending:
    """One caller's items waiting in a ``GroupCommit``."""

    __slots__ = ("error", "items", "lead", "mark_ttl_s", "ready", "result")

    def __init__(self, items: Sequence[Item], mark_ttl_s: int) -> None:
        self.items = items
        self.mark_ttl_s = mark_ttl_s
        self.ready = threading.Event()
        self.lead = False
        self.result: list[bool] | None = None
        self.error: BaseException | None = None

    def outcome(self) -> list[bool]:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class GroupCommit:
    """An ``AtomicWriter`` that callers arriving while a write is in flight share.

    The first caller writes its items at once. Callers that come while that round trip is
    on its way queue up; when it returns, the first of them writes everything queued (up to
    ``max_items``) in one script call, and so on. Each caller gets its own items' results,
    or the error of the call that carried them, and returns only then: nothing is
    acknowledged before it is written. Items keep their own guards, so two callers with the
    same dedupe mark in one call still enqueue once. Under load this saves most round
    trips (and Redis's per-script cost); alone, a caller waits for nobody.
    Works with threads and with gevent's greenlets (``threading`` is patched there).
    """

    def __init__(self, writer: AtomicWriter, *, max_items: int = 500) -> None:
        self.writer = writer
        self.max_items = max_items
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._writing = False

    def run(self, items: Sequence[Item], *, mark_ttl_s: int = 1) -> list[bool]:
        if not items:
            return []
        me = _Pending(items, mark_ttl_s)
        with self._lock:
            self._queue.append(me)
            lead = not self._writing
            self._writing = True
        if not lead:
            try:
                me.ready.wait()
            except BaseException:
                self._abandon(me)
                raise
            if not me.lead:
                return me.outcome()
        self._write_batch()
        return me.outcome()

    def _abandon(self, me: _Pending) -> None:
        """A waiting caller was interrupted (a timeout, a killed greenlet): drop its items
        unless a write already carries them, and pass the lead on if it had been given it."""
        with self._lock:
            if me not in self._queue:
                return
            self._queue.remove(me)
            if me.lead:
                self._hand_on()

    def _hand_on(self) -> None:
        """With the lock held: wake the next caller to write, or mark the writer idle."""
        if self._queue:
            self._queue[0].lead = True
            self._queue[0].ready.set()
        else:
            self._writing = False

    def _take_batch(self) -> list[_Pending]:
        with self._lock:
            batch: list[_Pending] = []
            count = 0
            ttl = self._queue[0].mark_ttl_s
            for pending in self._queue:
                if batch and (pending.mark_ttl_s != ttl
                              or count + len(pending.items) > self.max_items):
                    break
                batch.append(pending)
                count += len(pending.items)
            del self._queue[:len(batch)]
            return batch

    def _write_batch(self) -> None:
        """Write the head of the queue (which holds the caller), then hand the lead on."""
        batch = self._take_batch()
        try:
            results = self.writer.run([item for p in batch for item in p.items],
                                      mark_ttl_s=batch[0].mark_ttl_s)
        except Exception as exc:
            for pending in batch:
                pending.error = exc
        except BaseException:
            # The writing caller (always the batch's first) was killed: the others answer
            # as if Redis had failed (their senders resend), and it goes on being killed.
            for pending in batch[1:]:
                pending.error = redis.ConnectionError("the shared write was interrupted")
            raise
        else:
            start = 0
            for pending in batch:
                pending.result = results[start:start + len(pending.items)]
                start += len(pending.items)
        finally:
            with self._lock:
                self._hand_on()
            for pending in batch:
                pending.ready.set()


@dataclass(frozen=True)
class TaskMessage:
    task_id: str
    queue: str
    key: str
    envelope: str

    def push_op(self) -> Op:
        return ["LPUSH", self.key, self.envelope]


class MessageFactory:
    """Builds task messages as kombu's Redis transport stores them on a queue's list.

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
              argsrepr: str | None = None, retries: int = 0) -> TaskMessage:
        """``then`` names the tasks that follow as a chain; each gets the previous result.

        ``argsrepr`` is what Flower shows for the arguments (default: the trace key), so
        payloads with personal data never reach the monitor.
        """
        task_id = task_id or str(uuid.uuid4())
        queue = domain_of(task_name)
        template, embed = self._template(task_name, tuple(then))
        headers = {**template, "id": task_id, "root_id": task_id, "retries": retries,
                   "argsrepr": argsrepr or f"({trace_key!r},)", "trace_key": trace_key}
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
        return TaskMessage(task_id=task_id, queue=queue, key=self.key_prefix + queue,
                           envelope=orjson.dumps(envelope).decode())


def is_redis_broker(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))
