"""The dead-letter store in Redis (keys in ``o2c_workers.keys``).

An entry is a hash filed under sorted sets that share one score, its last failure (epoch s):
every id, ids by status, by status and category, by status and domain, and by trace key. A
listing reads one index with ``ZRANGEBYSCORE ... LIMIT``, or intersects the few it needs
into a short-lived key inside one transaction; no listing touches entries it does not return.
Every change is a compare-and-set on the entry's ``rev`` that moves it between indexes in
the same atomic write (``o2c_workers.atomic.AtomicWriter``).

What is stored is what a requeue replays: the task's arguments and the payload exactly as
they were, but for secret and personal fields, masked by name on every write
(``o2c_workers.redact.mask_fields``); the message and traceback, free text that is never
replayed, with secrets and e-mail addresses masked. People read entries through
``redacted``, which masks secret-looking text inside values too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import redis

from o2c_workers import keys, timeline
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.dlq.models import DeadLetter, Status
from o2c_workers.dlq.query import MAX_PAGE, Filter, Page
from o2c_workers.redact import mask_fields, redact, redact_text

#: Fields stored as JSON text inside the entry hash, masked by field name only.
_JSON_FIELDS = ("args", "kwargs", "chain", "payload", "original_payload")
#: Free text, never replayed: stored with secrets and e-mail addresses masked.
_TEXT_FIELDS = ("message", "traceback")
#: A closed entry's hash outlives its retention by this much, so pruning can still read it.
PRUNE_GRACE_S = 24 * 3600
#: The audit stream keeps about this many records (``XADD MAXLEN ~``).
AUDIT_MAXLEN = 100_000
#: Safety net on an intersection key, which the same transaction deletes.
TEMP_TTL_S = 60

Op = list[Any]


def encode_fields(data: dict[str, Any]) -> list[Any]:
    """``HSET`` arguments for model fields, as stored (see the module's docstring): JSON
    for structured ones, secret and personal fields masked; None left out."""
    flat: list[Any] = []
    for name, value in data.items():
        if name in _JSON_FIELDS:
            flat.extend([name, json.dumps(mask_fields(value))])
        elif name in _TEXT_FIELDS and value is not None:
            flat.extend([name, redact_text(str(value))])
        elif value is not None:
            flat.extend([name, str(value.value if isinstance(value, Status) else value)])
    return flat


def sync(reply: Any) -> Any:
    """redis-py types every reply as possibly awaitable; our clients are synchronous."""
    return reply


def _decode(raw: dict[bytes, bytes]) -> DeadLetter:
    data: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    for name in _JSON_FIELDS:
        if name in data:
            data[name] = json.loads(data[name])
    return DeadLetter.model_validate(data)


def redacted(entry: DeadLetter) -> DeadLetter:
    """The entry as people see it (``o2c dlq show``, ``list``, ``export``, the admin API):
    secret and personal fields masked by name, and secrets and e-mail addresses inside
    every text value. Never stored: a requeue replays the stored, exact arguments."""
    return entry.model_copy(update={
        "payload": redact(entry.payload),
        "original_payload": redact(entry.original_payload),
        "args": redact(entry.args),
        "kwargs": redact(entry.kwargs),
        "message": redact_text(entry.message),
        "traceback": redact_text(entry.traceback) if entry.traceback else None,
    })


class DeadLetterStore:
    """Add, read, list and change dead letters; every write keeps the indexes consistent."""

    def __init__(self, client: redis.Redis, *, prefix: str,
                 retention_s: int | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self._retention_s = retention_s
        self._writer: AtomicWriter | None = None

    @property
    def retention_s(self) -> int:
        """``O2C_DLQ_RETENTION_D`` unless given; read on first use, never at import."""
        if self._retention_s is None:
            from config import get_settings

            self._retention_s = get_settings().dlq_retention_s
        return self._retention_s

    def key(self, entry_id: str) -> str:
        return keys.dlq_entry(self.prefix, entry_id)

    # --- writes -----------------------------------------------------------------------------

    def _status_ops(self, command: str, entry: DeadLetter, status: Status) -> list[Op]:
        p, eid = self.prefix, entry.id
        score = [entry.last_failed_at] if command == "ZADD" else []
        return [[command, key, *score, eid] for key in (
            keys.dlq_index_status(p, status.value),
            keys.dlq_index_category(p, status.value, entry.category),
            keys.dlq_index_domain(p, status.value, entry.domain))]

    def _close_ops(self, entry_id: str, now: float) -> list[Op]:
        return [["EXPIRE", self.key(entry_id), self.retention_s + PRUNE_GRACE_S],
                ["ZADD", keys.dlq_index_expiry(self.prefix), now + self.retention_s, entry_id]]

    def index_ops(self, entry: DeadLetter) -> list[Op]:
        """The writes that file ``entry`` under every index of its status."""
        p, score, eid = self.prefix, entry.last_failed_at, entry.id
        return [
            ["ZADD", keys.dlq_index_all(p), score, eid],
            ["ZADD", keys.dlq_index_trace(p, entry.trace_key), score, eid],
            *self._status_ops("ZADD", entry, entry.status),
            ["SADD", keys.dlq_facets(p, "category"), entry.category],
            ["SADD", keys.dlq_facets(p, "domain"), entry.domain],
        ]

    def add_ops(self, entry: DeadLetter) -> list[Op]:
        """The Redis commands that store ``entry``: run them atomically (MULTI or Lua)."""
        fields = encode_fields(entry.model_dump(mode="json"))
        ops = [["HSET", self.key(entry.id), *fields], *self.index_ops(entry)]
        if entry.status.closed:
            ops += self._close_ops(entry.id, entry.last_failed_at)
        return ops

    def add(self, entry: DeadLetter) -> DeadLetter:
        pipe = self.client.pipeline(transaction=True)
        for op in self.add_ops(entry):
            pipe.execute_command(*op)  # type: ignore[no-untyped-call]
        pipe.execute()
        return entry

    def change(self, entry: DeadLetter, *, status: Status | None = None, now: float,
               fields: dict[str, Any] | None = None, before: Sequence[Op] = (),
               after: Sequence[Op] = ()) -> Item:
        """One compare-and-set on ``rev``: ``before``, then the entry's changes, ``after``.

        ``before`` is where a requeue puts its LPUSH: if the push fails, nothing of the entry
        has changed yet.
        """

        key = self.key(entry.id)
        updates = dict(fields or {})
        moving = status is not None and status is not entry.status
        if moving:
            updates["status"] = status
        ops: list[Op] = [*before]
        if updates:
            ops.append(["HSET", key, *encode_fields(updates)])
        ops.append(["HINCRBY", key, "rev", 1])
        if moving:
            assert status is not None
            ops += self._status_ops("ZREM", entry, entry.status)
            ops += self._status_ops("ZADD", entry, status)
            if status.closed:
                ops += self._close_ops(entry.id, now)
        ops += after
        return Item.if_field(key, "rev", str(entry.rev), ops)

    def run(self, items: Sequence[Item]) -> list[bool]:
        if self._writer is None:

            self._writer = AtomicWriter(self.client)
        return self._writer.run(items)

    def audit_op(self, action: str, entry_id: str, *, actor: str, now: float,
                 **detail: Any) -> Op:
        return ["XADD", keys.dlq_audit(self.prefix), "MAXLEN", "~", AUDIT_MAXLEN, "*",
                "action", action, "id", entry_id, "actor", actor, "at", repr(now),
                "detail", json.dumps(detail, default=str)]

    # --- reads ------------------------------------------------------------------------------

    def get(self, entry_id: str) -> DeadLetter | None:
        raw = sync(self.client.hgetall(self.key(entry_id)))
        return _decode(raw) if raw else None

    def many(self, entry_ids: Iterable[str]) -> list[DeadLetter]:
        """The entries, in the order asked; ids that no longer exist are left out."""
        pipe = self.client.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.hgetall(self.key(entry_id))
        return [_decode(raw) for raw in pipe.execute() if raw]

    def _terms(self, f: Filter) -> list[list[str]]:
        """Sets to intersect; each term is one key or a union of keys."""
        p = self.prefix
        statuses = [f.status.value] if f.status else [s.value for s in Status]
        terms: list[list[str]] = []
        if f.category:
            terms.append([keys.dlq_index_category(p, s, f.category) for s in statuses])
        if f.domain:
            terms.append([keys.dlq_index_domain(p, s, f.domain) for s in statuses])
        if f.trace_key:
            terms.append([keys.dlq_index_trace(p, f.trace_key)])
        if f.status and not (f.category or f.domain):
            terms.append([keys.dlq_index_status(p, f.status.value)])
        return terms or [[keys.dlq_index_all(p)]]

    def query(self, f: Filter, *, offset: int = 0, limit: int = 50,
              newest_first: bool = False) -> Page:
        """One page of the ids matching ``f``, oldest (or newest) last failure first."""
        limit = max(0, min(limit, MAX_PAGE))
        lo = f.since if f.since is not None else "-inf"
        terms = self._terms(f)
        pipe = self.client.pipeline(transaction=True)
        temps: list[str] = []
        if len(terms) == 1 and len(terms[0]) == 1:
            source = terms[0][0]
        else:
            sources = []
            for term in terms:
                if len(term) == 1:
                    sources.append(term[0])
                    continue
                temps.append(keys.dlq_temp(self.prefix, uuid.uuid4().hex))
                pipe.zunionstore(temps[-1], term, aggregate="MAX")
                sources.append(temps[-1])
            source = sources[0]
            if len(sources) > 1:
                temps.append(keys.dlq_temp(self.prefix, uuid.uuid4().hex))
                pipe.zinterstore(temps[-1], sources, aggregate="MAX")
                source = temps[-1]
            for temp in temps:
                pipe.expire(temp, TEMP_TTL_S)
        if newest_first:
            pipe.zrevrangebyscore(source, "+inf", lo, start=offset, num=limit)
        else:
            pipe.zrangebyscore(source, lo, "+inf", start=offset, num=limit)
        pipe.zcount(source, lo, "+inf")
        if temps:
            pipe.delete(*temps)
        results = pipe.execute()
        found, total = results[-3:-1] if temps else results[-2:]
        return Page([raw.decode() for raw in found], int(total), offset, limit)

    def iter_ids(self, f: Filter, *, page_size: int = 500) -> Iterator[str]:
        """Every id matching ``f``, page by page (entries closing meanwhile may be skipped)."""
        offset = 0
        while True:
            page = self.query(f, offset=offset, limit=page_size)
            yield from page.ids
            if page.next_offset is None:
                return
            offset = page.next_offset

    def ids(self, *, status: Status | None = Status.OPEN, category: str | None = None,
            domain: str | None = None, trace_key: str | None = None,
            since: float | None = None, limit: int | None = None) -> list[str]:
        """Entry ids matching every filter given, oldest first."""
        f = Filter(status=status, category=category, domain=domain, trace_key=trace_key,
                   since=since)
        if limit is not None:
            return self.query(f, limit=limit).ids
        return list(self.iter_ids(f))

    def count(self, *, status: Status = Status.OPEN) -> int:
        return int(sync(self.client.zcard(keys.dlq_index_status(self.prefix, status.value))))

    def stats(self, *, now: float | None = None) -> dict[str, Any]:
        """Entries per status; open ones per category and domain; the oldest open one."""
        now = time.time() if now is None else now
        p, open_ = self.prefix, Status.OPEN.value
        categories, domains = (
            sorted(m.decode() for m in sync(self.client.smembers(keys.dlq_facets(p, facet))))
            for facet in ("category", "domain"))
        pipe = self.client.pipeline(transaction=False)
        for status in Status:
            pipe.zcard(keys.dlq_index_status(p, status.value))
        for category in categories:
            pipe.zcard(keys.dlq_index_category(p, open_, category))
        for domain in domains:
            pipe.zcard(keys.dlq_index_domain(p, open_, domain))
        pipe.zrange(keys.dlq_index_status(p, open_), 0, 0)
        counts = pipe.execute()
        by_status = dict(zip([s.value for s in Status], counts[:len(Status)], strict=True))
        rest = counts[len(Status):]
        by_category = {c: n for c, n in zip(categories, rest, strict=False) if n}
        by_domain = {d: n for d, n in zip(domains, rest[len(categories):], strict=False) if n}
        oldest = None
        if counts[-1]:
            entry = self.get(counts[-1][0].decode())
            if entry is not None:
                oldest = {"id": entry.id, "trace_key": entry.trace_key,
                          "category": entry.category, "domain": entry.domain,
                          "first_failed_at": entry.first_failed_at,
                          "age_s": now - entry.first_failed_at}
        return {"by_status": by_status, "open_by_category": by_category,
                "open_by_domain": by_domain, "oldest_open": oldest}

    def audit_log(self, *, count: int = 100, entry_id: str | None = None) -> list[dict[str, Any]]:
        """The newest audit records (of one entry, when given), newest first."""
        records = []
        audit = keys.dlq_audit(self.prefix)
        for record_id, raw in sync(self.client.xrevrange(audit, count=count)):
            data = {k.decode(): v.decode() for k, v in raw.items()}
            if entry_id is not None and data.get("id") != entry_id:
                continue
            records.append({"record": record_id.decode(), **data,
                            "at": float(data["at"]), "detail": json.loads(data["detail"])})
        return records

    # --- lifecycle --------------------------------------------------------------------------

    def resolve(self, trace_key: str, *, task: str, filed_before: float, resolved_by: str,
                now: float | None = None) -> list[str]:
        """Mark resolved the open and requeued entries of one step (``task``) of ``trace_key``
        last filed before ``filed_before`` (epoch s): that step has since succeeded.

        Each entry changes in one compare-and-set with its timeline event; an entry that
        changed meanwhile (requeued, edited, purged) is left as it now is.
        """
        now = time.time() if now is None else now
        index = keys.dlq_index_trace(self.prefix, trace_key)
        ids = [raw.decode() for raw in
               sync(self.client.zrangebyscore(index, "-inf", f"({filed_before!r}"))]
        pending = [e for e in self.many(ids) if e.task == task
                   and e.status in (Status.OPEN, Status.REQUEUING, Status.REQUEUED)]
        items = [self.change(e, status=Status.RESOLVED, now=now,
                             fields={"resolved_by": resolved_by, "resolved_at": now},
                             after=timeline.record_ops(
                                 self.prefix, trace_key, "dead_letter_resolved", at=now,
                                 dead_letter=e.id, task=task, resolved_by=resolved_by))
                 for e in pending]
        done = self.run(items)
        # The fleet's own retention pass: closed entries past O2C_DLQ_RETENTION_D leave
        # every index here too, not only when people list the queue.
        self.prune(now=now)
        return [e.id for e, ok in zip(pending, done, strict=True) if ok]

    def prune(self, *, now: float | None = None, batch: int = 1000) -> int:
        """Drop closed entries past their retention from the store and every index."""

        now = time.time() if now is None else now
        p, expiry = self.prefix, keys.dlq_index_expiry(self.prefix)
        ids = [raw.decode() for raw in
               sync(self.client.zrangebyscore(expiry, "-inf", now, start=0, num=batch))]
        if not ids:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.hgetall(self.key(entry_id))
        items = []
        for entry_id, raw in zip(ids, pipe.execute(), strict=True):
            ops: list[Op] = [["ZREM", keys.dlq_index_all(p), entry_id], ["ZREM", expiry, entry_id]]
            if not raw:  # expired on its own: drop what can be known without it
                ops += [["ZREM", keys.dlq_index_status(p, s.value), entry_id] for s in Status]
                items.append(Item(["always"], ops))
                continue
            entry = _decode(raw)
            ops += [["ZREM", keys.dlq_index_trace(p, entry.trace_key), entry_id],
                    *self._status_ops("ZREM", entry, entry.status), ["DEL", self.key(entry_id)]]
            items.append(Item.if_field(self.key(entry_id), "rev", str(entry.rev), ops))
        return sum(self.run(items))
