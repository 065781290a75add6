"""How far the demo has come: the O2C report (``o2c report``) plus the queues' depth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis

from o2c_workers.amqp.depth import depth
from o2c_workers.celery_app import DOMAINS
from o2c_workers.report import Report, build_report
from o2c_workers.timeline import MILESTONES

#: Milestones in the order a transaction reaches them.
STAGES = MILESTONES


@dataclass(frozen=True)
class Snapshot:
    report: Report
    queued: int

    @property
    def counts(self) -> dict[str, int]:
        return self.report.counts

    @property
    def open_dead_letters(self) -> dict[str, int]:
        return self.report.open_dead_letters_by_category


def snapshot(client: redis.Redis, prefix: str, *, amqp_url: str | None = None) -> Snapshot:
    """The KPIs and the number of messages still waiting, right now: the queues' lists on
    Redis, or (``amqp_url``) the ready and delayed messages on RabbitMQ."""
    if amqp_url:
        queued = depth(amqp_url, DOMAINS).total
    else:
        queued = sum(cast(int, client.llen(domain)) for domain in DOMAINS)
    return Snapshot(build_report(client, prefix), queued)
