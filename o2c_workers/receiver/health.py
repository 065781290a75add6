"""``/healthz``, ``/readyz`` and ``/metrics``: what the platform and Prometheus ask."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from o2c_workers import metrics
from o2c_workers.amqp.publish import Publisher
from o2c_workers.dlq import DeadLetterStore, Status
from o2c_workers.infrastructure import BrokerUnavailable
from o2c_workers.receiver.http import Request, Response
from o2c_workers.redact import redact_text
from o2c_workers.stalls import count_stalled
from o2c_workers.sweeps.state import read_status

log = logging.getLogger("o2c.receiver")


#: How long the broker check waits for a connection or its answer (s): within the probe's
#: own timeout (deploy/k8s: 2 s).
BROKER_CHECK_TIMEOUT_S = 1.5
#: How long a good answer from the broker stands before it is asked again (s): probes from
#: several places every few seconds cost RabbitMQ one round trip in this long at most.
BROKER_GOOD_FOR_S = 2.0


class BrokerCheck:
    """Whether RabbitMQ works now, asked through the publisher's own pool of connections:
    the one a publish would take answers a round trip, or a new one opens (and serves the
    next publish). A good answer is kept ``good_for_s``; a bad one is asked again each time."""

    def __init__(self, publisher: Publisher, *, timeout_s: float = BROKER_CHECK_TIMEOUT_S,
                 good_for_s: float = BROKER_GOOD_FOR_S) -> None:
        self.publisher = publisher
        self.timeout_s = timeout_s
        self.good_for_s = good_for_s
        self._good_until = 0.0

    def problem(self) -> str | None:
        """None when the broker works, else what is wrong (no credentials in it)."""
        if time.monotonic() < self._good_until:
            return None
        try:
            self.publisher.check(timeout_s=self.timeout_s)
        except BrokerUnavailable as exc:
            self._good_until = 0.0
            return redact_text(str(exc))
        self._good_until = time.monotonic() + self.good_for_s
        return None


class Health:
    """Liveness answers from the process; readiness asks Redis, and RabbitMQ when it is the
    broker (``broker``)."""

    def __init__(self, client: redis.Redis, *, broker: BrokerCheck | None = None) -> None:
        self.redis = client
        self.broker = broker

    def live(self, request: Request) -> Response:
        return Response.json(200, {"status": "ok"})

    def ready(self, request: Request) -> Response:
        problems: dict[str, str] = {}
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            problems["redis"] = redact_text(str(exc))
        if self.broker is not None and (problem := self.broker.problem()) is not None:
            problems["broker"] = problem
        if problems:
            return Response.json(503, {"status": "unavailable", **problems})
        return Response.json(200, {"status": "ready"})


class Metrics:
    """Prometheus exposition: every gunicorn worker's counts in multiprocess mode, and the
    fleet's stalled transactions, dead letters open and requeuing, sweeps and Redis memory,
    read from Redis at each scrape."""

    def __init__(self, client: redis.Redis, *, prefix: str, stall_after_s: int) -> None:
        self.redis = client
        self.prefix = prefix
        self.stall_after_s = stall_after_s
        self.fleet = [metrics.StalledTransactions(self.count_stalled),
                      metrics.OpenDeadLetters(lambda: self.count_dead_letters(Status.OPEN)),
                      metrics.RequeuingDeadLetters(
                          lambda: self.count_dead_letters(Status.REQUEUING)),
                      metrics.RedisMemoryRatio(self.memory_ratio),
                      metrics.Sweeps(self.read_sweeps)]

    def __call__(self, request: Request) -> Response:
        body, content_type = metrics.render(extra=self.fleet)
        return Response(200, body, content_type)

    def memory_ratio(self) -> float | None:
        try:
            info: dict[str, Any] = self.redis.info("memory")  # type: ignore[assignment]
        except redis.RedisError as exc:
            log.warning("cannot read Redis memory: %s", exc)
            return None
        return metrics.memory_ratio(info)

    def read_sweeps(self) -> dict[str, metrics.SweepFigures] | None:
        try:
            return {name: status.figures()
                    for name, status in read_status(self.redis, self.prefix).items()}
        except redis.RedisError as exc:
            log.warning("cannot read the sweeps' figures: %s", exc)
            return None

    def count_dead_letters(self, status: Status) -> int | None:
        try:
            return DeadLetterStore(self.redis, prefix=self.prefix).count(status=status)
        except redis.RedisError as exc:
            log.warning("cannot count %s dead letters: %s", status.value, exc)
            return None

    def count_stalled(self) -> int | None:
        try:
            return count_stalled(self.redis, self.prefix, stall_after_s=self.stall_after_s)
        except redis.RedisError as exc:
            log.warning("cannot count stalled transactions: %s", exc)
            return None
