"""Which broker a process enqueues to, and the batch writer that enqueues there.

The settings have vouched for the combination (``config.broker``): a Redis broker is the
state's own Redis, so a batch pushes its task messages in the same script as its marks
(``AtomicWriter(..., pushes=True)``); RabbitMQ takes them first, with confirms, and the
script writes the marks after (``o2c_workers.amqp.then_mark``). Every path that enqueues
takes its writer (and, for the dead-letter requeue, its publisher) from here.
"""

from __future__ import annotations

import redis

from config import Settings
from o2c_workers.amqp.publish import Publisher, shared
from o2c_workers.amqp.then_mark import PublishThenMark
from o2c_workers.atomic import AtomicWriter, BatchWriter


def publisher(settings: Settings) -> Publisher | None:
    """The process's RabbitMQ publisher, or None on a Redis broker."""
    if settings.broker_kind != "amqp":
        return None
    return shared(settings.effective_broker_url,
                  confirm_timeout_s=settings.amqp_confirm_timeout_s,
                  idle_limit_s=settings.amqp_idle_limit_s)


def batch_writer(settings: Settings, client: redis.Redis) -> BatchWriter:
    """The writer of guarded batches that carry task messages, for this broker."""
    amqp = publisher(settings)
    if amqp is None:
        return AtomicWriter(client, pushes=True)
    return PublishThenMark(client, amqp)
