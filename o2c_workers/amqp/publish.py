"""Publishing task messages to RabbitMQ, and returning only once RabbitMQ has confirmed them.

Every path that enqueues outside Celery's own publishing (the receiver, the sweeps, the
dead-letter requeue, the repairs) publishes here, then writes its marks
(``o2c_workers.amqp.then_mark``). A message is the protocol-2 message Celery itself would
publish (the headers and JSON body of ``enqueue.TaskMessage``, ``correlation_id`` the task
id, persistent), sent to ``topology.EXCHANGE`` with its queue's name as the routing key, so
a Celery worker consuming the quorum queue runs it like any other.

A batch is published in one go on a channel in confirm mode (py-amqp's ``confirm_select``)
and waited for as a whole: ``publish`` returns once every message is acked, and raises
``BrokerUnavailable`` (infrastructure: the receiver answers 503) when one is nacked (a queue
at its limit under ``x-overflow: reject-publish``), returned (``mandatory``: no queue took
it), not confirmed within its confirm timeout (``O2C_AMQP_CONFIRM_TIMEOUT_S``), or the
connection is lost or refused. The
broker may then hold some of the messages: the caller writes no mark, the sender resends,
and a message published twice is absorbed by the idempotent steps.

Connections are kept per process and reused, one per concurrent publish (an idle list, as
``atomic.AtomicWriter`` keeps its Redis connections); a connection made before a fork is
never used after it. Each new connection declares the fleet's exchange and quorum queues
(``topology.task_queue``, the only arguments RabbitMQ accepts for them), so a message never
meets an exchange with nothing bound to it on a fresh vhost.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import amqp
from amqp import spec
from amqp.exceptions import AMQPError
from kombu.connection import Connection
from kombu.exceptions import OperationalError

from config.settings import Settings
from o2c_workers.amqp import topology
from o2c_workers.enqueue import TaskMessage
from o2c_workers.infrastructure import BrokerUnavailable
from o2c_workers.redact import redact_text

#: How long a batch waits for RabbitMQ's confirms before the publish counts as failed (s),
#: as shipped (``O2C_AMQP_CONFIRM_TIMEOUT_S``, 5 s: the receiver's Redis socket timeout).
CONFIRM_TIMEOUT_S: float = Settings.model_fields["amqp_confirm_timeout_s"].default
#: How long a new connection may take (TCP, AMQP handshake, the topology's declarations).
CONNECT_TIMEOUT_S = 5.0
#: A connection idle longer than this is closed rather than reused (s), as shipped
#: (``O2C_AMQP_IDLE_LIMIT_S``, 60 s). It sends no heartbeats, so a load balancer or NAT may
#: have dropped it without a word, and a publish on it would wait out the confirm timeout
#: (a 503) before a new one is made.
IDLE_LIMIT_S: float = Settings.model_fields["amqp_idle_limit_s"].default
#: ``delivery_mode`` of a persistent message, as Celery publishes its tasks.
PERSISTENT = 2


def amqp_message(message: TaskMessage) -> amqp.Message:
    """The message Celery's ``send_task_message`` publishes for this task."""
    return amqp.Message(message.body, content_type="application/json",
                        content_encoding="utf-8", application_headers=message.headers,
                        delivery_mode=PERSISTENT, correlation_id=message.task_id,
                        reply_to="")


class _Link:
    """One connection and its channel in confirm mode, with the confirms it is waiting for.

    RabbitMQ numbers a confirm-mode channel's publishes from 1 and acks or nacks each (or
    every one up to a number, ``multiple``); a message no queue took (``mandatory``) comes
    back as ``basic.return`` before its ack.
    """

    def __init__(self, url: str, *, connect_timeout_s: float) -> None:
        client: Any = Connection(  # type: ignore[no-untyped-call]
            url, connect_timeout=connect_timeout_s, heartbeat=0)
        self.client = client
        try:
            client.connect()
            self.connection: Any = client.connection
            self.channel: Any = self.connection.channel()
            for queue in topology.task_queues():
                bound: Any = queue(self.channel)
                bound.declare()
            self.channel.confirm_select()
        except BaseException:
            client.collect()
            raise
        self.channel.events["basic_ack"].add(self._ack)
        self.channel.events["basic_nack"].add(self._nack)
        self.channel.events["basic_return"].add(self._return)
        self.sent = 0
        self.used_at = time.monotonic()
        self.pending: set[int] = set()
        self.nacked: list[int] = []
        self.returned: list[str] = []

    def _settle(self, tag: int, multiple: bool) -> list[int]:
        settled = [t for t in self.pending if t <= tag] if multiple else [tag]
        self.pending.difference_update(settled)
        return settled

    def _ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _nack(self, tag: int, multiple: bool) -> None:
        self.nacked += self._settle(tag, multiple)

    def _return(self, exc: Exception, exchange: str, routing_key: str,
                message: amqp.Message) -> None:
        self.returned.append(f"{routing_key}: {exc}")

    def publish(self, messages: Sequence[TaskMessage], *, timeout_s: float) -> None:
        self.nacked, self.returned, self.pending = [], [], set()
        for message in messages:
            # Pending before it is sent: py-amqp reads what the broker sent before each
            # publish (connection.blocked), so an earlier message's ack may come meanwhile.
            self.sent += 1
            self.pending.add(self.sent)
            self.channel.basic_publish(amqp_message(message), exchange=topology.EXCHANGE,
                                       routing_key=message.queue, mandatory=True,
                                       timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError()
            self.connection.drain_events(timeout=left)
        if self.nacked:
            raise BrokerUnavailable(f"RabbitMQ refused {len(self.nacked)} of {len(messages)} "
                                    "message(s) (nack: a queue at its limit, or the broker "
                                    "could not store them)", reason="nacked")
        if self.returned:
            raise BrokerUnavailable(f"RabbitMQ routed no queue for {self.returned[0]}",
                                    reason="returned")
        self.used_at = time.monotonic()

    def ping(self, *, timeout_s: float) -> None:
        """One round trip that proves the connection and its vhost work: a passive declare of
        the fleet's exchange (py-amqp's ``exchange_declare`` has no timeout of its own)."""
        self.channel.send_method(spec.Exchange.Declare, "BssbbbbbF",
                                 (0, topology.EXCHANGE, "topic", True, True, False, False,
                                  False, None))
        self.channel.wait(spec.Exchange.DeclareOk, timeout=timeout_s)
        self.used_at = time.monotonic()

    def close(self, *, graceful: bool = False) -> None:
        """Close the connection: ``graceful`` with AMQP's handshake (a healthy one), else by
        dropping the socket (one that failed, whose handshake could hang or fail)."""
        try:
            if graceful:
                self.client.release()
            else:
                self.client.collect()
        except Exception:  # a dead connection's close may fail any way
            self.client.collect()


def _unavailable(exc: BaseException, *, url: str, timeout_s: float,
                 waiting: str = "confirm") -> BrokerUnavailable:
    """One error for every way a publish can fail below us, with what happened."""
    where = redact_text(url)
    if isinstance(exc, BrokerUnavailable):
        return exc
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return BrokerUnavailable(f"RabbitMQ at {where} did not {waiting} within {timeout_s} s",
                                 reason="timeout")
    return BrokerUnavailable(f"RabbitMQ at {where} is unavailable: {type(exc).__name__}: "
                             f"{redact_text(str(exc)) or 'connection lost'}",
                             reason="connection")


#: What a publish or a connect raises when the broker fails; anything else is a defect.
_FAILURES = (AMQPError, OSError, OperationalError)


class Publisher:
    """Publishes batches of task messages to one RabbitMQ broker with confirms."""

    def __init__(self, url: str, *, confirm_timeout_s: float = CONFIRM_TIMEOUT_S,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 idle_limit_s: float = IDLE_LIMIT_S) -> None:
        self.url = url
        self.confirm_timeout_s = confirm_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.idle_limit_s = idle_limit_s
        self._idle: list[_Link] = []
        self._pid = os.getpid()

    def _connect(self, timeout_s: float | None = None) -> _Link:
        timeout_s = self.connect_timeout_s if timeout_s is None else timeout_s
        try:
            return _Link(self.url, connect_timeout_s=timeout_s)
        except _FAILURES as exc:
            raise _unavailable(exc, url=self.url, timeout_s=timeout_s,
                               waiting="accept a connection") from exc

    def _take(self, connect_timeout_s: float | None = None) -> tuple[_Link, bool]:
        if self._pid != os.getpid():
            # Connections made before a fork belong to the parent; the child makes its own.
            self._idle, self._pid = [], os.getpid()
        while self._idle:
            link = self._idle.pop()
            if time.monotonic() - link.used_at < self.idle_limit_s:
                return link, True
            link.close()  # its handshake could hang on a dropped connection
        return self._connect(connect_timeout_s), False

    def _send(self, link: _Link, messages: Sequence[TaskMessage]) -> None:
        try:
            link.publish(messages, timeout_s=self.confirm_timeout_s)
        except _FAILURES as exc:
            # A nack or a return leaves the channel usable, but not knowing what the broker
            # still owes it; a fresh connection costs little next to a failed publish.
            link.close()
            raise _unavailable(exc, url=self.url, timeout_s=self.confirm_timeout_s) from exc
        except BaseException:
            link.close()
            raise

    def publish(self, messages: Sequence[TaskMessage]) -> None:
        """Publish every message and return once RabbitMQ has confirmed them all; else
        ``BrokerUnavailable``, when any of them may or may not be on its queue."""
        if not messages:
            return
        link, reused = self._take()
        try:
            self._send(link, messages)
        except BrokerUnavailable as exc:
            if not reused or exc.reason != "connection":
                raise
            # An idle connection the broker closed meanwhile (a restart, a vhost deleted and
            # made again) is dead on first use: drop them all, try once on a new one. What
            # the dead one got through is a duplicate at worst, and every step is idempotent.
            self._drop_idle()
            link = self._connect()
            self._send(link, messages)
        self._idle.append(link)

    def check(self, *, timeout_s: float) -> None:
        """Return once the broker works through this publisher's pool now, else raise
        ``BrokerUnavailable``: an idle connection answers a round trip, or a new one opens
        (each within ``timeout_s``), and is kept for the next publish."""
        link, reused = self._take(timeout_s)
        try:
            link.ping(timeout_s=timeout_s)
        except _FAILURES as exc:
            link.close()
            failed = _unavailable(exc, url=self.url, timeout_s=timeout_s, waiting="answer")
            if not reused or failed.reason != "connection":
                raise failed from exc
            self._drop_idle()  # as in publish: the broker closed it meanwhile
            link = self._connect(timeout_s)
        self._idle.append(link)

    def _drop_idle(self) -> None:
        for stale in self._idle:
            stale.close()
        self._idle.clear()

    def close(self) -> None:
        """Close the idle connections (a publish in progress keeps its own)."""
        idle, self._idle = self._idle, []
        for link in idle:
            link.close(graceful=True)


#: The process's publishers by broker URL and timeouts (``shared``).
_SHARED: dict[tuple[str, float, float], Publisher] = {}


def shared(url: str, *, confirm_timeout_s: float = CONFIRM_TIMEOUT_S,
           idle_limit_s: float = IDLE_LIMIT_S) -> Publisher:
    """The process's publisher for ``url`` with these timeouts, made on first use; it
    connects on first publish."""
    key = (url, confirm_timeout_s, idle_limit_s)
    publisher = _SHARED.get(key)
    if publisher is None:
        publisher = _SHARED.setdefault(key, Publisher(
            url, confirm_timeout_s=confirm_timeout_s, idle_limit_s=idle_limit_s))
    return publisher
