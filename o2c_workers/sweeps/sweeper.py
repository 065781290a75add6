"""A record sweep: each page of a SOQL answer is classified, its chains started and its
watermark advanced in one guarded write, then the next page is asked for."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from celery import Celery
from redis import Redis

from config import Settings
from config.routes import DEFAULT_ROUTES, Route, match
from o2c_workers import broker, intake, keys
from o2c_workers.atomic import AtomicWriter, BatchWriter, Item
from o2c_workers.enqueue import MessageFactory
from o2c_workers.receiver.records import SObject, ValidationError, validate_record
from o2c_workers.services import shared_reads
from o2c_workers.stalls import open_dead_letters
from o2c_workers.sweeps import state
from o2c_workers.sweeps.results import Found, SweepResult
from o2c_workers.sweeps.specs import ACCOUNTS, OPPORTUNITIES, Spec

log = logging.getLogger("o2c.sweep")

#: ``progress(sweep, records seen so far, records the query matched)``, after each page.
Progress = Callable[[str, int, int], None]


class QuerySource(Protocol):
    """What a sweep needs of the Salesforce client."""

    def query_pages(self, soql: str) -> Iterator[dict[str, Any]]: ...

    def api_usage(self) -> tuple[int, int] | None: ...


@dataclass
class Candidate:
    """A record of a page, validated, with its route."""

    record: SObject
    route: Route | None

    @property
    def trace_key(self) -> str:
        return self.record.Id

    @property
    def modified_at(self) -> float | None:
        stamp = self.record.LastModifiedDate
        return None if stamp is None else stamp.timestamp()


@dataclass
class Sweeper:
    """The sweeps of one org on one Redis (``o2c_workers.sweeps.run`` runs them all)."""

    settings: Settings
    redis: Redis
    salesforce: QuerySource
    messages: MessageFactory
    routes: Sequence[Route] = DEFAULT_ROUTES
    #: Writes a page's chains with their marks; on RabbitMQ it publishes them first.
    writer: BatchWriter | None = None

    def __post_init__(self) -> None:
        if self.writer is None:
            self.writer = AtomicWriter(self.redis, pushes=True)

    @classmethod
    def build(cls, settings: Settings, *, redis_client: Redis, salesforce: QuerySource,
              celery_app: Celery, routes: Sequence[Route] = DEFAULT_ROUTES) -> Sweeper:
        """A sweeper that enqueues as the receiver does, on the settings' broker."""
        transport = celery_app.conf.broker_transport_options or {}
        messages = MessageFactory(celery_app,
                                  key_prefix=str(transport.get("global_keyprefix", "")))
        return cls(settings, redis_client, salesforce, messages, routes,
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
        return max(60.0, 2.0 * self.settings.sweep_interval_s)

    def specs(self) -> list[Spec]:
        return [OPPORTUNITIES, *([ACCOUNTS] if self.settings.sweep_accounts else [])]

    def start_from(self, spec: Spec, since: float | None) -> tuple[float, bool]:
        """Where a sweep starts, and whether it may move the durable watermark."""
        durable = state.watermark(self.redis, self.prefix, spec.name)
        if durable is None:
            lookback = self.settings.sweep_first_lookback_h * 3600.0
            start = time.time() - lookback if since is None else since
            return start, True
        default = durable - self.settings.sweep_overlap_s
        if since is None:
            return default, True
        return since, since <= durable

    def sweep(self, spec: Spec, *, since: float | None = None, dry_run: bool = False,
              progress: Progress | None = None, lease: state.Lease | None = None
              ) -> SweepResult:
        """One sweep of ``spec``: page by page, each page's chains and watermark at once."""
        start, durable = self.start_from(spec, since)
        result = SweepResult(spec.name, start, dry_run=dry_run)
        query = spec.query(self.settings, self.routes, since=start)
        for page in self.salesforce.query_pages(query):
            result.api_calls += 1
            candidates = [c for c in (self.candidate(spec, r, result)
                                      for r in page.get("records") or []) if c]
            advance = durable and not dry_run
            high = max((c.modified_at for c in candidates if c.modified_at), default=None)
            self._take(candidates, result, dry_run=dry_run,
                       watermark=high if advance and high else None, spec=spec)
            if lease is not None:
                lease.renew()
            if progress is not None:
                progress(spec.name, result.seen, int(page.get("totalSize") or 0))
        if durable and not dry_run:
            # Everything modified before the first query was in its answer.
            self.batches.run([Item(["always"], [state.advance_op(self.prefix, spec.name,
                                                                result.started_at)])])
            result.watermark = state.watermark(self.redis, self.prefix, spec.name)
        result.finished_at = time.time()
        return result

    def start_records(self, spec: Spec, records: Sequence[dict[str, Any]], *,
                      dry_run: bool = False) -> SweepResult:
        """Start the chains of ``records`` (rows of ``spec``'s query) as a page of the
        sweep would, under the same marks, moving no watermark (``o2c reconcile --fix``)."""
        result = SweepResult(spec.name, None, dry_run=dry_run)
        candidates = [c for c in (self.candidate(spec, r, result) for r in records) if c]
        self._take(candidates, result, dry_run=dry_run, watermark=None, spec=spec)
        result.finished_at = time.time()
        return result

    def candidate(self, spec: Spec, raw: dict[str, Any], result: SweepResult
                   ) -> Candidate | None:
        fields = {k: v for k, v in raw.items() if k != "attributes" and v is not None}
        try:
            record = validate_record(spec.sobject, fields)
        except ValidationError:
            trace_key = str(fields.get("Id") or "?")
            log.warning("sweep %s: record %s fails validation; left alone", spec.name,
                        trace_key, extra={"trace_key": trace_key})
            result.found.append(Found(trace_key, "invalid"))
            return None
        route = match(tuple(self.routes), spec.sobject, getattr(record, "StageName", None))
        candidate = Candidate(record, route)
        if route is None or route.ignored or intake.version_of(record) is None:
            result.found.append(Found(candidate.trace_key, "unrouted", candidate.modified_at,
                                      record.Name))
            return None
        return candidate

    def _take(self, candidates: list[Candidate], result: SweepResult, *, dry_run: bool,
              watermark: float | None, spec: Spec) -> None:
        """Classify a page's records, then start the chains of the new ones and advance
        the watermark in one guarded write (the marks decide a race with a notification)."""
        states = self.states(candidates)
        items: list[Item] = []
        fresh: list[Candidate] = []
        # The won records a page starts are read together, as a message's are.
        together = shared_reads.groups(
            [c.trace_key for c, seen in zip(candidates, states, strict=True)
             if seen == "new" and c.route is not None
             and c.route.tasks[0] == shared_reads.FIRST_TASK], received_at=time.time())
        for candidate, seen in zip(candidates, states, strict=True):
            if seen != "new":
                result.found.append(Found(candidate.trace_key, seen, candidate.modified_at,
                                          candidate.record.Name))
            elif dry_run:
                result.found.append(Found(candidate.trace_key, "would_start",
                                          candidate.modified_at, candidate.record.Name))
            else:
                items.append(self.start_item(candidate, spec=spec,
                                             group=together.get(candidate.trace_key)))
                fresh.append(candidate)
        if watermark is not None:
            items.append(Item(["always"], [state.advance_op(self.prefix, spec.name,
                                                            watermark)]))
        if not items:
            return
        taken = self.batches.run(items, mark_ttl_s=self.settings.dedupe_ttl_s)
        for candidate, ok in zip(fresh, taken, strict=False):
            result.found.append(Found(candidate.trace_key, "started" if ok else "already_started",
                                      candidate.modified_at, candidate.record.Name))

    def states(self, candidates: Sequence[Candidate]) -> list[str]:
        """``dead_lettered``, ``running``, ``done`` or ``new``, per record (two reads)."""
        if not candidates:
            return []
        pipe = self.redis.pipeline(transaction=False)
        active = keys.transaction_index_active(self.prefix)
        for c in candidates:
            pipe.zscore(active, c.trace_key)
            pipe.exists(*intake.version_marks(self.prefix, c.trace_key, c.record).values())
        replies = pipe.execute()
        letters = open_dead_letters(self.redis, self.prefix, (c.trace_key for c in candidates))
        out = []
        for c, in_flight, marked in zip(candidates, replies[::2], replies[1::2], strict=True):
            if letters[c.trace_key]:
                out.append("dead_lettered")
            elif in_flight is not None:
                out.append("running")
            elif marked:
                out.append("done")
            else:
                out.append("new")
        return out

    def start_item(self, candidate: Candidate, *, spec: Spec, event: str = "swept",
                   guard: str | None = None, group: shared_reads.ReadGroup | None = None,
                   **details: Any) -> Item:
        """The guarded write that starts a record's chain as a notification would: under
        the record version's mark (or ``guard``, a re-drive's own); ``group``: the records
        its first step reads with it."""
        route = cast(Route, candidate.route)
        record, trace_key = candidate.record, candidate.trace_key
        msg, ops = intake.start_chain(
            self.messages, self.prefix, route, record, trace_key=trace_key,
            context={"sobject_type": spec.sobject}, now=time.time(), event=event,
            argsrepr=f"<{spec.sobject} {trace_key} {event}>",
            headers={shared_reads.HEADER: group.header()} if group else None,
            sweep=spec.name, **details)
        if guard is not None:
            return Item.unless_marked(guard, ops, messages=[msg])
        marks = intake.version_marks(self.prefix, trace_key, record)
        return Item.unless_any(list(marks.values()), ops, sets=[marks[keys.SWEPT]],
                               messages=[msg])
