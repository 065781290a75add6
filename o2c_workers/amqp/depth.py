"""How many messages wait on RabbitMQ: the ready count of a passive ``queue.declare``.

The Redis broker's census counts list lengths (``o2c_workers.delivery.census``); on RabbitMQ
a passive declare answers a queue's ready messages without changing it (and without the
management plugin). Messages delivered and not yet acked are not in that count; retries
waiting for their countdown are in the ``celery_delayed_*`` queues (``delayed``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from amqp.exceptions import NotFound
from kombu.connection import Connection
from kombu.transport.native_delayed_delivery import MAX_LEVEL, level_name


@dataclass(frozen=True)
class Depth:
    #: Ready messages by queue (a queue not declared yet counts 0).
    ready: dict[str, int]
    #: Messages waiting for their countdown in the delayed-delivery queues.
    delayed: int

    @property
    def queued(self) -> int:
        return sum(self.ready.values())

    @property
    def total(self) -> int:
        return self.queued + self.delayed


def ready_counts(connection: Connection, names: Iterable[str]) -> dict[str, int]:
    """Each queue's ready messages; a missing queue counts 0 (a passive declare of it closes
    the channel, so the next one gets a new channel)."""
    counts: dict[str, int] = {}
    channel = connection.channel()  # type: ignore[no-untyped-call]
    try:
        for name in names:
            try:
                counts[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except NotFound:
                counts[name] = 0
                channel = connection.channel()  # type: ignore[no-untyped-call]
    finally:
        channel.close()
    return counts


def depth(url: str, names: Iterable[str], *, timeout_s: float = 5.0) -> Depth:
    """The ready messages of ``names`` and the delayed retries, on the broker at ``url``."""
    with Connection(url, connect_timeout=timeout_s) as connection:  # type: ignore[no-untyped-call]
        ready = ready_counts(connection, names)
        delayed = ready_counts(connection, [level_name(n) for n in range(MAX_LEVEL + 1)])
    return Depth(ready=ready, delayed=sum(delayed.values()))
