"""kombu's Redis transport, made to lose nothing: take-and-hold is one atomic step.

kombu's stock transport pops a message with ``BRPOP`` and records it as unacked in a
second command; a crash, a reset connection or a Redis restart between the two (or a
``BRPOP`` reply left unread in the socket) loses the message for good, and what it did
record comes back only after the visibility timeout. Here:

- a consumer takes a message with ``BLMOVE`` (or a Lua ``LMOVE`` over several queues) from
  its queue into its own held list, so the message is always in one of the two;
- an ack removes it from the held list, a reject with requeue moves it back (Lua);
- the consumer's keeper thread heartbeats it; what a silent consumer held goes back to its
  queues (``O2C_REDELIVERY_AFTER_S``), and what a consumer held when its connection was
  lost goes back as soon as the process consumes again;
- a message published with an ETA (a retry's countdown) is parked in a sorted set and moved
  to its queue when due, so workers hold only what they run.

Everything else (fanout for events and remote control, publishing, the message format) is
kombu's own. The message format on the lists is unchanged, so the receiver's Lua writes
and kombu's stock transport read the same queues.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime
from queue import Empty
from time import monotonic, time
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps, loads

from o2c_workers import keys
from o2c_workers.delivery import scripts
from o2c_workers.delivery.keeper import Keeper, keeper_for
from o2c_workers.delivery.refusals import Refusals

#: With several queues, a blocking wait on one of them lasts this long before the next
#: non-blocking look over all of them (so no queue waits behind another's timeout). The
#: wait is on the queue last taken from: the customer worker (``-Q customer,sweep``) waits
#: on ``customer``, and a won opportunity is taken at once, not after the sweep's wait.
MULTI_QUEUE_WAIT_S = 0.1
#: A message due less than this far ahead goes straight to its queue.
PARK_AFTER_S = 1.0
#: The keeper's connections: it heartbeats every second and must never hang.
KEEPER_TIMEOUTS = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0}


def due_ms(message: dict[str, Any]) -> int | None:
    """When a message published with an ETA is due (epoch ms), else None."""
    eta = (message.get("headers") or {}).get("eta")
    if not eta:
        return None
    moment = datetime.fromisoformat(str(eta))
    if moment.tzinfo is None:
        return None  # a naive ETA is in the worker's local time; leave it to Celery
    return int(moment.timestamp() * 1000)


class QoS(virtual.QoS):
    """Acks and rejects act on the consumer's held list; nothing needs a visibility sweep."""

    restore_at_shutdown = True

    def ack(self, delivery_tag: str) -> None:
        self.channel.settle(delivery_tag)
        super().ack(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        self.channel.settle(delivery_tag, requeue=requeue)
        self._quick_ack(delivery_tag)

    def restore_unacked(self) -> list[Any]:
        """The channel puts back its whole held lists when it closes (delivered or not)."""
        self._flush()
        self._delivered.clear()
        self.channel.release_held()
        return []

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        """Held work of dead consumers is put back by the keeper, not by a timeout."""


class Channel(kombu_redis.Channel):
    QoS = QoS  # type: ignore[assignment]

    #: One list per queue: priorities are not used by the fleet, and ``BLMOVE`` takes one
    #: source. A message published with a priority goes to the queue's only list.
    priority_steps = [0]
    o2c_prefix = "o2c"
    redelivery_after_s = 30.0
    from_transport_options = (  # type: ignore[assignment]
        *kombu_redis.Channel.from_transport_options, "o2c_prefix", "redelivery_after_s")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.consumer_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: delivery tag → (queue, the message exactly as it is held).
        self._holding: dict[str, tuple[str, bytes]] = {}
        self._registered_queues: set[str] = set()
        self._noack: set[str] = set()
        #: The take command in flight: its name and the queues it names.
        self._pending: tuple[str, list[str]] | None = None
        self._scan_next = True
        #: The queue the last message came from: the one a blocking wait is on.
        self._last_taken: str | None = None
        self._released = False
        self._keeper: Keeper | None = None
        #: Redis refusing writes (OOM, READONLY, MISCONF): see ``delivery.refusals``.
        self._refusals = Refusals()
        super().__init__(*args, **kwargs)

    @property
    def supports_batch_publish(self) -> bool:
        return False  # every publish passes through _put (it may park the message)

    # --- keys -----------------------------------------------------------------------------
    def _queue_key(self, queue: str) -> str:
        return f"{self.global_keyprefix}{queue}"

    def _held_key(self, queue: str) -> str:
        return keys.delivery_held(self.o2c_prefix, self.consumer_id, queue)

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._noack.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    # --- registration ---------------------------------------------------------------------
    @property
    def keeper(self) -> Keeper:
        if self._keeper is None:
            self._keeper = keeper_for(
                self._keeper_where(), prefix=self.o2c_prefix,
                queue_prefix=self.global_keyprefix,
                redelivery_after_s=float(self.redelivery_after_s),
                client_factory=self._keeper_clients())
        return self._keeper

    def _keeper_where(self) -> str:
        """The Redis the keeper serves: one keeper per process and Redis."""
        params = self._connparams(asynchronous=False)
        return f"{params.get('host')}:{params.get('port')}:{params.get('path')}:" \
               f"{params.get('db')}"

    def _keeper_clients(self) -> Callable[[], redis.Redis]:
        """New clients for the keeper, each with a pool of its own and timeouts: it must
        never hang on a dead Redis. Read from the channel now: the keeper outlives it."""
        params = {**self._connparams(asynchronous=False), **KEEPER_TIMEOUTS}
        return lambda: redis.Redis(connection_pool=redis.ConnectionPool(**params))

    def _register(self, queues: list[str]) -> None:
        """Make sure the keeper knows every queue before anything is taken from it."""
        new = set(queues) - self._registered_queues
        if new:
            self.keeper.add(self.consumer_id, new)
            self._registered_queues |= new
            self._released = False

    def release_held(self) -> None:
        """Put back everything this consumer holds (now, or when the process next consumes)."""
        if self._registered_queues and not self._released:
            self._released = True
            self._holding.clear()
            self._refusals.unsettled.clear()
            self.keeper.close(self.consumer_id)

    # --- taking ---------------------------------------------------------------------------
    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        if set(queues) <= self._noack:
            return super()._brpop_start(timeout)
        if self._refusals.paused or not self._refusals.settle(self._settle):
            return None  # asked again on a later tick of the loop
        try:
            self._register(queues)
        except redis.ResponseError as exc:
            return self._refusals.refused(exc)
        if len(queues) == 1 or not self._scan_next:
            wait = (timeout or self.brpop_timeout) if len(queues) == 1 else MULTI_QUEUE_WAIT_S
            # Not the round robin's first: it has just moved the busy queue to the back.
            on: str = queues[0]
            if self._last_taken is not None and self._last_taken in queues:
                on = self._last_taken
            command = ["BLMOVE", self._queue_key(on), self._held_key(on), "RIGHT", "LEFT",
                       wait]
            self._pending = ("BLMOVE", [on])
        else:
            pairs = [k for q in queues for k in (self._queue_key(q), self._held_key(q))]
            command = ["EVAL", scripts.FETCH, len(pairs), *pairs]
            self._pending = ("EVAL", list(queues))
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]
        self.client.connection.send_command(*command)

    def _brpop_read(self, **options: Any) -> bool:
        if self._pending is None:
            return super()._brpop_read(**options)
        command, queues = self._pending
        try:
            try:
                reply = self.client.parse_response(self.client.connection, command, **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            except redis.ResponseError as exc:
                self._refusals.refused(exc)  # nothing was taken
                raise Empty() from None
        finally:
            self._pending = None
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()
        self._refusals.accepted()
        if command == "EVAL":
            self._scan_next = reply is not None
            if reply is None:
                raise Empty()
            queue, raw = queues[int(reply[0]) - 1], reply[1]
        else:
            self._scan_next = True
            if reply is None:
                raise Empty()
            queue, raw = queues[0], reply
        self._queue_cycle.rotate(queue)
        self._last_taken = queue
        self._take(queue, raw)
        return True

    def _poll_error(self, type: str, **options: Any) -> Any:
        if type == "BRPOP" and self._pending is not None:
            return self._brpop_read(**options)
        return super()._poll_error(type, **options)

    def _take(self, queue: str, raw: bytes) -> None:
        payload = loads(raw)
        tag = payload["properties"]["delivery_tag"]
        self._holding[tag] = (queue, raw)
        self.connection._deliver(payload, queue)
        if queue in self._noack:
            self.settle(tag)

    def _get(self, queue: str, timeout: Any = None) -> dict[str, Any]:
        """``basic_get``: take one message into the held list, like a consumer does."""
        self._register([queue])
        with self.conn_or_acquire() as client:
            raw = client.lmove(self._queue_key(queue), self._held_key(queue), "RIGHT", "LEFT")
        if raw is None:
            raise Empty()
        payload: dict[str, Any] = loads(raw)
        self._holding[payload["properties"]["delivery_tag"]] = (queue, raw)
        return payload

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        if message is not None and no_ack:
            self.settle(message.delivery_tag)
        return message

    # --- settling -------------------------------------------------------------------------
    def settle(self, delivery_tag: str, *, requeue: bool = False) -> None:
        """Ack (drop from the held list) or requeue (back to the head of its queue)."""
        queue, raw = self._holding.pop(delivery_tag, (None, None))
        if queue is None or raw is None:
            return  # already put back with the rest of the held list
        try:
            self._settle(queue, raw, requeue)
        except redis.ResponseError as exc:
            self._refusals.refused(exc)
            # Still in the held list, so nothing is lost; settled before the next take.
            self._refusals.unsettled.append((queue, raw, requeue))

    def _settle(self, queue: str, raw: bytes, requeue: bool) -> None:
        with self.conn_or_acquire() as client:
            if requeue:
                client.eval(scripts.REQUEUE, 2, self._held_key(queue),
                            self._queue_key(queue), raw)
            else:
                client.lrem(self._held_key(queue), 1, raw)

    # --- publishing -----------------------------------------------------------------------
    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        due = due_ms(message)
        if due is None or due <= (time() + PARK_AFTER_S) * 1000:
            return super()._put(queue, message, **kwargs)
        member = f"{self._queue_key(queue)}\n{dumps(message)}"
        with self.conn_or_acquire() as client:
            client.zadd(keys.delivery_delayed(self.o2c_prefix), {member: due})
        return None

    # --- closing --------------------------------------------------------------------------
    def close(self) -> None:
        if self._in_poll and self._pending is not None:
            # The reply may hold a message: it is in our held list, which goes back below.
            try:
                self.client.parse_response(self.client.connection, self._pending[0])
            except (redis.RedisError, OSError):  # the connection may be gone: nothing to read
                pass
            self._pending = None
            self._in_poll = None  # type: ignore[assignment]
        super().close()
        try:
            self.release_held()
        finally:
            self._disconnect_pools()


class Transport(kombu_redis.Transport):
    """``broker_transport = "o2c_workers.delivery.transport:Transport"`` with a redis URL."""

    Channel = Channel
    driver_type = "redis"
    driver_name = "redis"


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """The same take-and-hold on the master that Redis Sentinel names (kombu's Sentinel
    channel finds it, and finds it again after a failover)."""

    master_name: str | None = None
    #: Both parents' options: ours (prefix, redelivery) and Sentinel's (master_name, ...).
    from_transport_options = tuple(dict.fromkeys((  # type: ignore[assignment]
        *Channel.from_transport_options, *kombu_redis.SentinelChannel.from_transport_options)))

    def _keeper_where(self) -> str:
        return f"sentinel:{self.master_name}:{self._connparams(asynchronous=False)['db']}"

    def _keeper_clients(self) -> Callable[[], redis.Redis]:
        # kombu keeps the Sentinel it builds to close its connections with the channel's;
        # the keeper's outlives the channel, so the channel's own is put back.
        channel_sentinels = getattr(self, "_sentinel_manager", None)
        pool = self._sentinel_managed_pool(asynchronous=False)
        self._sentinel_manager = channel_sentinels
        pool.connection_kwargs.update(KEEPER_TIMEOUTS)
        # The pool asks the sentinels for the master on every new connection.
        return lambda: redis.Redis(connection_pool=pool)


class SentinelTransport(Transport):
    """``broker_transport = "o2c_workers.delivery.transport:SentinelTransport"`` with kombu's
    ``sentinel://host:port;sentinel://...`` URL and the ``master_name`` transport option."""

    Channel = SentinelChannel
    default_port = kombu_redis.SentinelTransport.default_port  # type: ignore[assignment]
