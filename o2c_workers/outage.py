"""Riding out a Redis outage on RabbitMQ without spending the message's delivery limit.

A step whose Redis reads or writes fail hands its message back (``Reject``, requeue). On
Redis the reliable transport then pauses its takes (``delivery/refusals.py``) and a return
costs nothing. On RabbitMQ every return counts toward the quorum queue's
``x-delivery-limit`` (``o2c_workers.amqp.topology``): a worker that handed each message back
at once would take it again in milliseconds, and a Redis restart of a minute would
dead-letter healthy messages. So on RabbitMQ the step first holds its message, unacked, until
a write to Redis lands again (or ``HOLD_S`` has passed, or its soft time limit is near), and
only then hands it back: one return per outage per running step. While every slot of a
worker is holding, the worker takes nothing (its prefetch is its concurrency): consuming is
paused for as long as Redis refuses.
"""

from __future__ import annotations

import logging
import time

import redis
from celery.exceptions import SoftTimeLimitExceeded

from o2c_workers import keys
from o2c_workers.infrastructure import is_infrastructure

log = logging.getLogger("o2c.outage")

#: The longest a step holds its message for Redis to come back, in seconds. Well below
#: RabbitMQ's consumer timeout (30 min) and the step's soft time limit (240 s); an outage
#: longer than this costs one return per ``HOLD_S`` per running step.
HOLD_S = 120.0
#: Time between two probes, in seconds.
PROBE_INTERVAL_S = 1.0
#: The probe's TTL, in milliseconds.
PROBE_TTL_MS = 60_000
#: Never hold past this many seconds before the step's soft time limit.
TIME_LIMIT_MARGIN_S = 10.0


def writable(client: redis.Redis, prefix: str) -> bool:
    """Whether Redis takes a write now (a small ``SET`` that OOM, READONLY, MISCONF and
    LOADING all refuse, as they refuse the step's own writes)."""
    try:
        client.set(keys.writable_probe(prefix), "1", px=PROBE_TTL_MS)
    except Exception as exc:
        if not is_infrastructure(exc):
            raise
        return False
    return True


def hold_until_writable(client: redis.Redis, prefix: str, *, hold_s: float = HOLD_S,
                        interval_s: float = PROBE_INTERVAL_S) -> bool:
    """Wait until Redis takes writes again, at most ``hold_s``; whether it does.

    A soft time limit reached while holding ends the hold (the caller hands the message
    back): it must never escape as a step failure, which would ack the message."""
    deadline = time.monotonic() + max(0.0, hold_s)
    announced = False
    try:
        while not writable(client, prefix):
            if time.monotonic() + interval_s > deadline:
                return False
            if not announced:
                log.warning("Redis refuses writes: holding the message (up to %.0f s) rather "
                            "than handing it back, which would count toward its delivery "
                            "limit", hold_s)
                announced = True
            time.sleep(interval_s)
    except SoftTimeLimitExceeded:
        return False
    if announced:
        log.warning("Redis takes writes again: handing the message back to run it again")
    return True


def hold_budget_s(*, started_at: float, soft_time_limit_s: float | None,
                  now: float | None = None) -> float:
    """How long a step that started at ``started_at`` may still hold its message."""
    if not soft_time_limit_s:
        return HOLD_S
    now = time.time() if now is None else now
    left = started_at + soft_time_limit_s - TIME_LIMIT_MARGIN_S - now
    return max(0.0, min(HOLD_S, left))
