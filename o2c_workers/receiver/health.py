"""``/healthz``, ``/readyz`` and ``/metrics``: what the platform and Prometheus ask."""

from __future__ import annotations

import logging
from typing import Any

import redis

from o2c_workers import metrics
from o2c_workers.receiver.http import Request, Response
from o2c_workers.stalls import count_stalled
from o2c_workers.sweeps.state import read_status

log = logging.getLogger("o2c.receiver")


class Health:
    """Liveness answers from the process; readiness asks Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def live(self, request: Request) -> Response:
        return Response.json(200, {"status": "ok"})

    def ready(self, request: Request) -> Response:
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            return Response.json(503, {"status": "unavailable", "redis": str(exc)})
        return Response.json(200, {"status": "ready"})


class Metrics:
    """Prometheus exposition: every gunicorn worker's counts in multiprocess mode, and the
    fleet's stalled transactions, sweeps and Redis memory, read from Redis at each scrape."""

    def __init__(self, client: redis.Redis, *, prefix: str, stall_after_s: int) -> None:
        self.redis = client
        self.prefix = prefix
        self.stall_after_s = stall_after_s
        self.fleet = [metrics.StalledTransactions(self.count_stalled),
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

    def count_stalled(self) -> int | None:
        try:
            return count_stalled(self.redis, self.prefix, stall_after_s=self.stall_after_s)
        except redis.RedisError as exc:
            log.warning("cannot count stalled transactions: %s", exc)
            return None
