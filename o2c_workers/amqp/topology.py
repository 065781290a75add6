"""The fleet's RabbitMQ topology: what the workers consume and what every publisher routes to.

One durable topic exchange, ``o2c``, routes each task message to its domain's queue by the
queue's name (Celery's ``task_routes`` and the receiver's publisher use the same routing
key). A topic exchange, not a direct one, because Celery's native delayed delivery (the
``celery_delayed_*`` exchanges kombu declares for quorum queues) binds ``#.<routing key>``
on the queue's exchange and direct exchanges cannot take it: a retry's countdown then waits
in RabbitMQ, never unacked in a worker past RabbitMQ's consumer timeout.

Every domain queue (and ``sweep``) is a quorum queue: replicated, durable, and with
``x-delivery-limit`` a message returned that many times without an ack (its consumers died
or rejected it) is dead-lettered, at least once, to ``o2c.dead`` (a fanout exchange) and
its queue of the same name, where the fleet files it as a dead letter with its context.

Declaring a queue with other arguments than it already has is refused by RabbitMQ
(``PRECONDITION_FAILED``), so every process takes the arguments from here.
"""

from __future__ import annotations

from typing import Any

from kombu.entity import Exchange, Queue

from o2c_workers.domains import DOMAINS, SWEEP_QUEUE

#: The exchange every task message is published to (routing key: the queue's name).
EXCHANGE = "o2c"
#: Where RabbitMQ dead-letters a message past its delivery limit, and the queue it lands in.
DEAD_EXCHANGE = "o2c.dead"
DEAD_QUEUE = "o2c.dead"
#: Returns without an ack before RabbitMQ dead-letters a message (RabbitMQ 4's default).
DELIVERY_LIMIT = 20
#: Celery's name for the type of queue its native delayed delivery declares.
QUEUE_TYPE = "quorum"

QUEUE_NAMES = (*DOMAINS, SWEEP_QUEUE)


def exchange() -> Exchange:
    return Exchange(EXCHANGE, type="topic", durable=True)  # type: ignore[no-untyped-call]


def queue_arguments(*, delivery_limit: int = DELIVERY_LIMIT) -> dict[str, Any]:
    """The arguments of every domain queue (they must match on every declare)."""
    return {
        "x-queue-type": QUEUE_TYPE,
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_EXCHANGE,
        # At-least-once dead-lettering: a message is removed only once o2c.dead confirms it.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def task_queue(name: str, *, delivery_limit: int = DELIVERY_LIMIT) -> Queue:
    """One domain queue, bound to ``o2c`` by its name."""
    if name not in QUEUE_NAMES:
        raise ValueError(f"not a queue of the fleet: {name!r}")
    return Queue(name, exchange(), routing_key=name, durable=True,  # type: ignore[no-untyped-call]
                 queue_arguments=queue_arguments(delivery_limit=delivery_limit))


def task_queues(*, delivery_limit: int = DELIVERY_LIMIT) -> list[Queue]:
    return [task_queue(name, delivery_limit=delivery_limit) for name in QUEUE_NAMES]


def dead_letter_queue() -> Queue:
    """Where past-limit messages wait until the fleet has filed them (no limit of its own)."""
    return Queue(DEAD_QUEUE,  # type: ignore[no-untyped-call]
                 Exchange(DEAD_EXCHANGE, type="fanout", durable=True),  # type: ignore[no-untyped-call]
                 durable=True, queue_arguments={"x-queue-type": QUEUE_TYPE})
