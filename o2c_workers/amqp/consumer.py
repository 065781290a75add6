"""The worker's consumer on RabbitMQ: Celery's, with the fleet's topology declared first and
a consumer of ``o2c.dead`` that files what RabbitMQ dead-lettered.

Celery 5.7 binds every queue the app knows to its native delayed delivery exchanges when a
worker starts, but declares only the queues that worker consumes: on a fresh vhost a worker
of ``-Q customer`` fails to bind ``pricing`` and logs that native delayed delivery "will not
be available", and a retry routed to a queue nobody has declared yet is dropped by the topic
exchange. So every worker declares the whole topology (``o2c_workers.amqp.topology``) before
that binding (``DelayedDelivery`` here), whichever process starts first.

Every worker also consumes ``o2c.dead`` (``DeadLetters``): as long as one worker runs,
dead-lettered messages are filed, and each is acked only once its dead letter is in Redis.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.consumer.delayed_delivery import DelayedDelivery as CeleryDelayedDelivery
from kombu.connection import Connection
from kombu.message import Message
from kombu.messaging import Consumer as KombuConsumer

from o2c_workers.amqp import dead, topology
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.infrastructure import is_infrastructure
from o2c_workers.runtime import get_runtime

log = logging.getLogger("o2c.amqp")

#: A dead letter Redis refused is tried again after this many seconds (the message is held,
#: unacked, meanwhile).
REFILE_AFTER_S = 5.0
#: Messages of ``o2c.dead`` a worker holds at once.
DEAD_PREFETCH = 10


def declare_topology(connection: Connection) -> None:
    """Declare the exchange, every domain queue and ``o2c.dead`` (a no-op where they exist
    with these arguments; RabbitMQ refuses other arguments, ``PRECONDITION_FAILED``)."""
    channel = connection.channel()  # type: ignore[no-untyped-call]
    try:
        for queue in (*topology.task_queues(), topology.dead_letter_queue()):
            queue(channel).declare()  # type: ignore[no-untyped-call]
    finally:
        channel.close()


class DelayedDelivery(CeleryDelayedDelivery):  # type: ignore[misc]
    """Celery's native delayed delivery, with the fleet's topology declared before the
    bindings (see the module's docstring)."""

    name = "o2c.DelayedDelivery"

    def _bind_queues(self, app: Any, connection: Connection) -> None:
        declare_topology(connection)
        super()._bind_queues(app, connection)


class DeadLetters(bootsteps.ConsumerStep):  # type: ignore[misc]
    """Consume ``o2c.dead``: file each message as a dead letter, then ack it."""

    name = "o2c.DeadLetters"

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.c = c

    def get_consumers(self, channel: Any) -> list[KombuConsumer]:
        channel.basic_qos(0, DEAD_PREFETCH, False)
        consumer = KombuConsumer(  # type: ignore[no-untyped-call]
            channel, queues=[topology.dead_letter_queue()], callbacks=[self.on_message],
            accept=["json"], on_decode_error=self.on_undecodable)
        return [consumer]

    def on_undecodable(self, message: Message, exc: Exception) -> None:
        """A message that is not Celery's JSON (Celery refused it for that): filed with its
        body as text, so that it is seen rather than held for ever."""
        raw = message.body
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        log.warning("a dead-lettered message is not JSON (%s); filing its text", exc)
        self.on_message(text, message)

    def on_message(self, body: Any, message: Message) -> None:
        runtime = get_runtime()
        store = DeadLetterStore(runtime.redis, prefix=runtime.prefix)
        try:
            dead.file(store, message.headers or {}, body)
        except Exception as exc:
            if not is_infrastructure(exc):
                # A defect: the message stays unacked here, and back in o2c.dead when this
                # worker stops.
                log.exception("cannot file a dead-lettered message; it stays in %s",
                              topology.DEAD_QUEUE)
                return
            log.warning("Redis refuses the dead letter; holding the message and trying "
                        "again in %.0f s: %s", REFILE_AFTER_S, exc)
            self.later(message)
            return
        message.ack()  # type: ignore[no-untyped-call]

    def later(self, message: Message) -> None:
        """Try the message again later; it stays unacked (no other consumer takes it)."""
        self.c.timer.call_after(REFILE_AFTER_S, self.retry, (message,))

    def retry(self, message: Message) -> None:
        if not getattr(message.channel, "is_open", True):
            return  # its connection was lost: RabbitMQ has put it back on o2c.dead
        try:
            body = message.decode()  # type: ignore[no-untyped-call]
        except Exception as exc:
            self.on_undecodable(message, exc)
            return
        self.on_message(body, message)


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer with the fleet's steps (``worker_consumer`` on RabbitMQ)."""

    class Blueprint(CeleryConsumer.Blueprint):  # type: ignore[misc]
        name = "o2c.Consumer"
        default_steps = [
            *(step for step in CeleryConsumer.Blueprint.default_steps
              if not step.endswith(":DelayedDelivery")),
            "o2c_workers.amqp.consumer:DelayedDelivery",
            "o2c_workers.amqp.consumer:DeadLetters",
        ]
