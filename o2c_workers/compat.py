"""Workarounds for defects of the libraries we run on, each with the failure it prevents."""

from __future__ import annotations

import logging
import math
from typing import Any

log = logging.getLogger("o2c.compat")


def guard_unacked_restore_after_collect() -> None:
    """Keep a worker alive when its Redis broker connection drops with tasks in flight.

    Celery 5.7's consumer first ``collect()``s a lost broker connection (which drops the
    transport's client) and then closes it; closing the Redis channel restores the
    unacked messages through that client, and the resulting ``AttributeError`` escapes
    ``ignore_errors`` (it only ignores connection errors) and stops the worker
    ("Unrecoverable error"). The messages are safe in Redis's unacked index and come back
    after the visibility timeout, so the restore on close is skipped when the client is
    gone. Found by ``tests/dev/test_fleet.py::test_a_redis_restart_mid_task_loses_nothing``.
    """
    from kombu.transport import redis as kombu_redis

    original: Any = kombu_redis.QoS.restore_unacked
    if getattr(original, "_o2c_guarded", False):
        return

    def restore_unacked(self: Any, client: Any = None) -> Any:
        connection = getattr(self.channel, "connection", None)
        if client is None and getattr(connection, "client", None) is None:
            log.warning("broker connection lost with %d unacked message(s); they return to "
                        "their queues after the visibility timeout", len(self._delivered))
            return None
        return original(self, client)

    restore_unacked._o2c_guarded = True  # type: ignore[attr-defined]
    kombu_redis.QoS.restore_unacked = restore_unacked  # type: ignore[method-assign]


def native_delay_countdown(countdown_s: float, *, broker_kind: str) -> float:
    """A retry's countdown as Celery's native delayed delivery (RabbitMQ) can take it.

    Celery 5.7 routes a countdown through the ``celery_delayed_*`` exchanges as
    ``int(countdown)`` seconds: a countdown under one second becomes 0, and kombu's
    ``calculate_routing_key`` raises ``ValueError("countdown must be a positive number")``,
    so the retry is never published; a fractional one arrives early and then waits in the
    worker, unacked. On RabbitMQ we round up to whole seconds (at least one). Found by
    ``tests/amqp_workers/test_delayed.py::test_a_sub_second_countdown_is_published_and_runs``.
    """
    if broker_kind != "amqp" or countdown_s <= 0:
        return countdown_s
    return float(max(1, math.ceil(countdown_s)))
