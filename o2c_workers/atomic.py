"""One round trip of guarded Redis writes: each batch happens whole, or not at all.

The receiver puts a notification's task message on its queue together with its dedupe mark;
the dead-letter store changes an entry together with its indexes; a requeue moves an entry
and pushes its message. Each is one ``Item`` (a guard and its writes) run by one Lua script.

An item names the task messages it enqueues (``Item.messages``) apart from its other writes.
On a Redis broker ``AtomicWriter(client, pushes=True)`` pushes them first, in the same
script. On RabbitMQ they are published with confirms before the script runs, and the script
runs the other writes alone (``o2c_workers.amqp.then_mark``); an ``AtomicWriter`` that was
not told the broker is its Redis refuses an item with messages, so that no path can push a
message onto a Redis list that no worker reads.

Redis refusing writes (``OOM``, ``READONLY``, ``MISCONF``) refuses the script at its first
write, and lets a script that has written finish, so a batch is never half-applied: the
caller gets the error (``infrastructure.is_infrastructure``) and nothing changed.

A batch may also wait for replicas (``Replicas``, Redis ``WAIT`` on the same connection).
``WAIT`` counts the replicas that have this connection's last write; a batch whose guards
all held (a resend of something already taken in) writes nothing, and its ``WAIT`` would
answer at once whatever became of the first write. So such a batch writes a small probe
key first: replication is ordered, so a replica that has the probe has every earlier write,
the first one included.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import redis
from redis.connection import Connection
from redis.exceptions import NoScriptError

from o2c_workers.errors import NotReplicated

Op = list[Any]

#: One guarded batch of writes per item. Guards:
#:   mark   - skip if any of KEY... exists; else run the ops, then SET each KEY with a TTL
#:            (the dedupe marks are written last, so a failed op leaves nothing that would
#:            hide a resend);
#:   marks  - N, CHECK x N, SET...: skip if any CHECK key exists; else run the ops, then SET
#:            each SET key with the TTL (a mark that guards against others' marks only);
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
    ok = redis.call('EXISTS', unpack(guard, 2)) == 0
  elseif guard[1] == 'marks' then
    ok = redis.call('EXISTS', unpack(guard, 3, 2 + tonumber(guard[2]))) == 0
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
    for m = 2, glen do
      redis.call('SET', guard[m], '1', 'EX', ttl)
    end
  elseif ok and guard[1] == 'marks' then
    for m = 3 + tonumber(guard[2]), glen do
      redis.call('SET', guard[m], '1', 'EX', ttl)
    end
  end
  out[i] = ok and 1 or 0
end
return out
"""


class Message(Protocol):
    """A task message an item enqueues (``o2c_workers.enqueue.TaskMessage``)."""

    def push_op(self) -> Op: ...


@dataclass
class Item:
    """Writes that happen together, or not at all, under one guard."""

    guard: list[Any]
    ops: list[Op] = field(default_factory=list)
    #: The task messages the item enqueues: on a Redis broker pushed before ``ops`` in the
    #: same script; on RabbitMQ published and confirmed before the script runs ``ops``.
    messages: Sequence[Message] = ()

    @classmethod
    def unless_marked(cls, mark_key: str, ops: list[Op], *, also: Sequence[str] = (),
                      messages: Sequence[Message] = ()) -> Item:
        """Run ``ops`` unless ``mark_key`` (or any key in ``also``) is set; then set them all."""
        return cls(["mark", mark_key, *also], ops, messages)

    @classmethod
    def unless_any(cls, check: Sequence[str], ops: list[Op], *, sets: Sequence[str],
                   messages: Sequence[Message] = ()) -> Item:
        """Run ``ops`` unless any key in ``check`` is set; then set each key in ``sets``."""
        if not check:
            raise ValueError("a guard needs a key to check")
        return cls(["marks", len(check), *check, *sets], ops, messages)

    @classmethod
    def if_field(cls, key: str, name: str, value: str, ops: list[Op]) -> Item:
        return cls(["hfield", key, name, value], ops)


def lets_run(guard: list[Any], replies: Sequence[Any]) -> bool:
    """Whether ``guard`` lets its item's writes run, from the replies of ``guard_reads``."""
    kind = guard[0]
    if kind in ("mark", "marks"):
        return int(replies[0]) == 0
    if kind == "hfield":
        value = replies[0]
        return value is not None and value.decode() == str(guard[3])
    return True


def guard_reads(guard: list[Any]) -> list[list[Any]]:
    """The reads that tell whether ``guard`` lets its writes run (the script's own test)."""
    kind = guard[0]
    if kind == "mark":
        return [["EXISTS", *guard[1:]]]
    if kind == "marks":
        return [["EXISTS", *guard[2:2 + int(guard[1])]]]
    if kind == "hfield":
        return [["HGET", guard[1], guard[2]]]
    return []


class BatchWriter(Protocol):
    """What runs guarded batches for the receiver, the sweeps and the repairs: an
    ``AtomicWriter`` on a Redis broker, ``then_mark.PublishThenMark`` on RabbitMQ."""

    def run(self, items: Sequence[Item], *, mark_ttl_s: int = 1,
            replicas: Replicas | None = None) -> list[bool]: ...


@dataclass(frozen=True)
class Replicas:
    """Wait for ``count`` replicas to confirm each batch, for at most ``timeout_ms``;
    ``probe_key`` is what a batch that wrote nothing writes, so that the wait covers the
    earlier write its guards found (TTL ``probe_ttl_ms``)."""

    count: int
    timeout_ms: int
    probe_key: str
    probe_ttl_ms: int = 60_000


class AtomicWriter:
    """Runs guarded batches in one round trip; each item is all-or-nothing.

    It keeps its own idle connections, made with the client's connection settings, and
    takes one per call. This is the receiver's hot path: borrowing from redis-py's pool
    costs a readiness poll and pool bookkeeping on every call, about as much CPU as the
    script's round trip itself. A list's ``pop`` and ``append`` are atomic, so threads and
    greenlets share the idle list without a lock.
    """

    def __init__(self, client: redis.Redis, *, pushes: bool = False) -> None:
        self.client = client
        #: Whether this Redis is the broker, so an item's messages are pushed onto its lists.
        self.pushes = pushes
        self._sha = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()
        self._idle: list[Connection] = []
        self._pid = os.getpid()

    def _new_connection(self) -> Connection:
        pool = self.client.connection_pool
        conn = cast(Connection, pool.connection_class(**pool.connection_kwargs))
        # Connect through the class's own ``connect``: a Sentinel-managed connection asks
        # the sentinels for the master there. redis-py's lazy connect on first send skips
        # it and would open the default address (localhost:6379) instead.
        conn.connect()  # type: ignore[no-untyped-call]
        return conn

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

    def _wait(self, conn: Connection, replicas: Replicas, *, wrote: bool) -> None:
        if not wrote:
            conn.send_command("SET", replicas.probe_key, "1",  # type: ignore[no-untyped-call]
                              "PX", replicas.probe_ttl_ms)
            conn.read_response()  # type: ignore[no-untyped-call]
        conn.send_command("WAIT", replicas.count,  # type: ignore[no-untyped-call]
                          replicas.timeout_ms)
        confirmed = int(conn.read_response())  # type: ignore[no-untyped-call]
        if confirmed < replicas.count:
            raise NotReplicated(confirmed=confirmed, wanted=replicas.count,
                                timeout_ms=replicas.timeout_ms)

    def run(self, items: Sequence[Item], *, mark_ttl_s: int = 1,
            replicas: Replicas | None = None) -> list[bool]:
        """Run each item's guarded writes; with ``replicas``, then wait for them to confirm
        (``NotReplicated`` if too few do: the writes stay, and a resend finds them)."""
        if not items:
            return []
        args: list[Any] = [mark_ttl_s, len(items)]
        for item in items:
            if item.messages and not self.pushes:
                raise ValueError("task messages reach a Redis list only when that Redis is "
                                 "the broker (AtomicWriter(..., pushes=True))")
            ops = [*(m.push_op() for m in item.messages), *item.ops]
            args.append(len(item.guard))
            args.extend(item.guard)
            args.append(len(ops))
            for op in ops:
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
        taken = [bool(flag) for flag in result]
        if replicas is not None:
            try:
                self._wait(conn, replicas, wrote=any(taken))
            except NotReplicated:
                self._idle.append(conn)
                raise
            except BaseException:
                conn.disconnect()  # type: ignore[no-untyped-call]
                raise
        self._idle.append(conn)
        return taken
