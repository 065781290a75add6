"""The ERP change feed: what the ERP's webhooks missed, found by asking the ERP.

Every ``O2C_ERP_FEED_INTERVAL_S`` the beat process sends ``o2c.sweep.erp_feed``; the poll
asks the adapter (``ErpAdapter.changes_since``), page by page, for the documents whose
events the fleet routes modified since the feed's durable watermark (less
``O2C_ERP_FEED_OVERLAP_S``), and plans each version exactly as a webhook event of it
(``receiver.erp_events``: the same trace key, routing and task message), under the
version's mark, so that an event delivered and a poll of the same version start one task
between them. Once the last page is taken in, the watermark moves to the time the first
page was asked for. A changed master document (an item, a price, a tax rule, a customer:
``erp.changes.MASTERS``) invalidates what the master-data cache (``erp.cache``) holds of it
before the watermark moves. It holds a lease of its own (``{p}:sweep:lock:erp_feed``), so
it never waits for a Salesforce sweep nor runs twice at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from celery import Celery
from redis import Redis

from config import Settings
from config.routes import ERP_ROUTES
from o2c_workers import broker, keys
from o2c_workers.atomic import AtomicWriter, BatchWriter, Item
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.enqueue import MessageFactory
from o2c_workers.erp.cache import MasterCache
from o2c_workers.models import ChangeCursor, ChangePage, ErpChange
from o2c_workers.receiver.erp_events import (
    ErpEvent,
    ErpEventHandler,
    trace_key_of,
    version_marks,
)
from o2c_workers.sweeps import state
from o2c_workers.sweeps.results import Found, SweepResult
from o2c_workers.sweeps.run import kept
from o2c_workers.sweeps.sweeper import Progress

log = logging.getLogger("o2c.sweep.erp_feed")

#: The feed's name: its watermark, figures, lease and metrics label.
FEED = "erp_feed"
#: A change stamped this far ahead of our clock says the ERP's time zone is set wrong.
_AHEAD_S = 300.0


class ChangeSource(Protocol):
    """What the feed needs of the ERP adapter."""

    def changes_since(self, cursor: ChangeCursor) -> ChangePage: ...


def as_event(change: ErpChange) -> ErpEvent:
    """The webhook event a change stands for (the fields its trace key is read from)."""
    doc = {k: v for k, v in (("salesforce_id", change.salesforce_id),
                             ("po_no", change.po_no)) if v}
    return ErpEvent(event=change.event, doctype=change.doctype, name=change.name,
                    modified=change.modified, doc=doc)


@dataclass
class ErpFeed:
    """The change feed of one ERP on one Redis."""

    settings: Settings
    redis: Redis
    erp: ChangeSource
    messages: MessageFactory
    #: Writes a page's tasks with their marks; on RabbitMQ it publishes them first.
    writer: BatchWriter | None = None
    events: ErpEventHandler = field(init=False)
    masters: MasterCache = field(init=False)

    def __post_init__(self) -> None:
        if self.writer is None:
            self.writer = AtomicWriter(self.redis, pushes=True)
        self.masters = MasterCache(self.redis, self.prefix, ttl_s=self.settings.erp_cache_ttl_s)
        self.events = ErpEventHandler(
            self.settings, messages=self.messages,
            dead_letters=DeadLetterStore(self.redis, prefix=self.prefix))

    @classmethod
    def build(cls, settings: Settings, *, redis_client: Redis, erp: ChangeSource,
              celery_app: Celery) -> ErpFeed:
        """A feed that enqueues as the receiver does, on the settings' broker."""
        transport = celery_app.conf.broker_transport_options or {}
        messages = MessageFactory(celery_app,
                                  key_prefix=str(transport.get("global_keyprefix", "")))
        return cls(settings, redis_client, erp, messages,
                   broker.batch_writer(settings, redis_client))

    @property
    def batches(self) -> BatchWriter:
        assert self.writer is not None
        return self.writer

    @property
    def prefix(self) -> str:
        return self.settings.key_prefix

    @property
    def lease_ttl_s(self) -> float:
        return max(60.0, 2.0 * self.settings.erp_feed_interval_s)

    def run(self, *, since: float | None = None, dry_run: bool = False,
            progress: Progress | None = None) -> SweepResult:
        """One poll under the feed's lease (``SweepBusy`` if another holds it), its figures
        (or its failure) kept for ``o2c report`` and ``/metrics``."""
        with state.Lease(self.redis, self.prefix, ttl_s=self.lease_ttl_s,
                         feed=FEED) as lease:
            return kept(self.redis, self.prefix, FEED, lambda: self.poll(
                since=since, dry_run=dry_run, progress=progress, lease=lease))

    def start_from(self, since: float | None) -> tuple[float, bool]:
        """Where a poll starts, and whether it may move the durable watermark."""
        durable = state.watermark(self.redis, self.prefix, FEED)
        if durable is None:
            lookback = self.settings.sweep_first_lookback_h * 3600.0
            return (time.time() - lookback if since is None else since), True
        if since is None:
            return durable - self.settings.erp_feed_overlap_s, True
        return since, since <= durable

    def poll(self, *, since: float | None = None, dry_run: bool = False,
             progress: Progress | None = None, lease: state.Lease | None = None
             ) -> SweepResult:
        """Every page since the start, each taken in as it comes; then the watermark."""
        start, durable = self.start_from(since)
        result = SweepResult(FEED, start, dry_run=dry_run)
        cursor: ChangeCursor | None = ChangeCursor(
            since=start, page_size=self.settings.erp_feed_page_size)
        while cursor is not None:
            page = self.erp.changes_since(cursor)
            result.api_calls += page.calls
            self.forget(page.masters, result, dry_run=dry_run)
            self.take(page.changes, result, dry_run=dry_run)
            if lease is not None:
                lease.renew()
            if progress is not None:
                progress(FEED, result.seen, result.seen)
            cursor = page.next
        if durable and not dry_run:
            # Everything modified before the first page was asked for was in the answers.
            self.batches.run([Item(["always"], [state.advance_op(self.prefix, FEED,
                                                                result.started_at)])])
            result.watermark = state.watermark(self.redis, self.prefix, FEED)
        result.finished_at = time.time()
        return result

    def take(self, changes: Sequence[ErpChange], result: SweepResult, *,
             dry_run: bool) -> None:
        """Start the task of every version not taken in yet, in one guarded write."""
        routed = []
        for change in changes:
            if (change.doctype, change.event) in ERP_ROUTES:
                routed.append(change)
            else:
                result.found.append(self._found(change, "unrouted"))
        ahead = [c for c in routed if c.modified_at > time.time() + _AHEAD_S]
        if ahead:
            log.warning("change feed: %s %s is stamped %s, ahead of this clock: is "
                        "O2C_ERP_TIME_ZONE the ERP's?", ahead[0].doctype, ahead[0].name,
                        ahead[0].modified)
        seen = self._taken(routed)
        fresh = [c for c, taken in zip(routed, seen, strict=True) if not taken]
        for change in (c for c, taken in zip(routed, seen, strict=True) if taken):
            result.found.append(self._found(change, "done"))
        if dry_run:
            result.found.extend(self._found(c, "would_start") for c in fresh)
            return
        now = time.time()
        plans = [self.events.plan(as_event(c), now=now, by=keys.FED) for c in fresh]
        started = self.batches.run([p.item for p in plans],
                                  mark_ttl_s=self.settings.dedupe_ttl_s)
        for change, ok in zip(fresh, started, strict=True):
            result.found.append(self._found(change, "started" if ok else "already_started"))

    def forget(self, changes: Sequence[ErpChange], result: SweepResult, *,
               dry_run: bool) -> None:
        """Drop what the master-data cache holds of each changed master document. A Redis
        that refuses fails the poll (the watermark stays): the change is found again."""
        for change in changes:
            if not dry_run:
                self.masters.forget(change.doctype, change.name, change.salesforce_id)
            result.invalidated += 1

    def _taken(self, changes: Sequence[ErpChange]) -> list[bool]:
        """Whether each version was taken in already, by a webhook or an earlier poll."""
        if not changes:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for change in changes:
            pipe.exists(*version_marks(self.prefix, as_event(change)).values())
        return [bool(n) for n in pipe.execute()]

    @staticmethod
    def _found(change: ErpChange, outcome: str) -> Found:
        return Found(trace_key_of(as_event(change)), outcome, change.modified_at,
                     f"{change.doctype} {change.name}")
