"""The dead-letter store in Redis (keys in ``o2c_workers.keys``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis

from o2c_workers import keys
from o2c_workers.dlq.models import DeadLetter, Status
from o2c_workers.redact import redact, redact_text

#: Fields stored as JSON text inside the entry hash.
_JSON_FIELDS = ("args", "kwargs", "chain", "payload", "original_payload")

Op = list[Any]


def _encode(entry: DeadLetter) -> dict[str, str]:
    data = entry.model_dump(mode="json")
    out: dict[str, str] = {}
    for name, value in data.items():
        if name in _JSON_FIELDS:
            out[name] = json.dumps(value)
        elif value is None:
            continue
        else:
            out[name] = str(value)
    return out


def _decode(raw: dict[bytes, bytes]) -> DeadLetter:
    data: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    for name in _JSON_FIELDS:
        if name in data:
            data[name] = json.loads(data[name])
    return DeadLetter.model_validate(data)


def sanitize(entry: DeadLetter) -> DeadLetter:
    """Mask secrets in everything that a person or a log might read."""
    return entry.model_copy(update={
        "payload": redact(entry.payload, personal=False),
        "args": redact(entry.args, personal=False),
        "kwargs": redact(entry.kwargs, personal=False),
        "message": redact_text(entry.message),
        "traceback": redact_text(entry.traceback) if entry.traceback else None,
    })


class DeadLetterStore:
    """Add, read and index dead letters; every write keeps the indexes consistent."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def index_ops(self, entry: DeadLetter) -> list[Op]:
        """The writes that file ``entry`` under its indexes (open entries only by facet)."""
        p, score, eid = self.prefix, entry.last_failed_at, entry.id
        ops: list[Op] = [
            ["ZADD", keys.dlq_index_all(p), score, eid],
            ["ZADD", keys.dlq_index_status(p, entry.status.value), score, eid],
            ["ZADD", keys.dlq_index_trace(p, entry.trace_key), score, eid],
        ]
        if entry.status is Status.OPEN:
            ops.append(["ZADD", keys.dlq_index_category(p, entry.category), score, eid])
            ops.append(["ZADD", keys.dlq_index_domain(p, entry.domain), score, eid])
        return ops

    def add_ops(self, entry: DeadLetter) -> list[Op]:
        """The Redis commands that store ``entry``: run them atomically (MULTI or Lua)."""
        entry = sanitize(entry)
        fields = _encode(entry)
        flat: list[Any] = []
        for name, value in fields.items():
            flat.extend([name, value])
        return [["HSET", keys.dlq_entry(self.prefix, entry.id), *flat], *self.index_ops(entry)]

    def add(self, entry: DeadLetter) -> DeadLetter:
        pipe = self.client.pipeline(transaction=True)
        for op in self.add_ops(entry):
            pipe.execute_command(*op)
        pipe.execute()
        return entry

    def get(self, entry_id: str) -> DeadLetter | None:
        raw = self.client.hgetall(keys.dlq_entry(self.prefix, entry_id))
        return _decode(raw) if raw else None

    def ids(self, *, status: Status | None = Status.OPEN, category: str | None = None,
            domain: str | None = None, trace_key: str | None = None,
            since: float | None = None, limit: int | None = None) -> list[str]:
        """Entry ids matching every filter given, oldest first."""
        p = self.prefix
        candidates = []
        if category:
            candidates.append(keys.dlq_index_category(p, category))
        if domain:
            candidates.append(keys.dlq_index_domain(p, domain))
        if trace_key:
            candidates.append(keys.dlq_index_trace(p, trace_key))
        if status is not None:
            candidates.append(keys.dlq_index_status(p, status.value))
        if not candidates:
            candidates.append(keys.dlq_index_all(p))
        # Scan the smallest index, check membership of the rest.
        sizes = [(self.client.zcard(k), k) for k in candidates]
        sizes.sort()
        driver, others = sizes[0][1], [k for _, k in sizes[1:]]
        lo = since if since is not None else "-inf"
        found: list[str] = []
        for raw_id in self.client.zrangebyscore(driver, lo, "+inf"):
            if others:
                pipe = self.client.pipeline(transaction=False)
                for key in others:
                    pipe.zscore(key, raw_id)
                if any(score is None for score in pipe.execute()):
                    continue
            found.append(raw_id.decode())
            if limit is not None and len(found) >= limit:
                break
        return found

    def many(self, entry_ids: Iterable[str]) -> list[DeadLetter]:
        pipe = self.client.pipeline(transaction=False)
        ids = list(entry_ids)
        for entry_id in ids:
            pipe.hgetall(keys.dlq_entry(self.prefix, entry_id))
        return [_decode(raw) for raw in pipe.execute() if raw]

    def count(self, *, status: Status = Status.OPEN) -> int:
        return int(self.client.zcard(keys.dlq_index_status(self.prefix, status.value)))

    def resolve(self, trace_key: str, *, resolved_by: str) -> list[str]:
        """Mark every open entry of ``trace_key`` resolved by a later success."""
        from o2c_workers.enqueue import AtomicWriter, Item

        p = self.prefix
        ids = [raw.decode() for raw in
               self.client.zrange(keys.dlq_index_trace(p, trace_key), 0, -1)]
        items = []
        for entry in self.many(ids):
            if entry.status is not Status.OPEN:
                continue
            key = keys.dlq_entry(p, entry.id)
            items.append(Item.if_field(key, "status", Status.OPEN.value, [
                ["HSET", key, "status", Status.RESOLVED.value, "resolved_by", resolved_by],
                ["ZREM", keys.dlq_index_status(p, Status.OPEN.value), entry.id],
                ["ZREM", keys.dlq_index_category(p, entry.category), entry.id],
                ["ZREM", keys.dlq_index_domain(p, entry.domain), entry.id],
                ["ZADD", keys.dlq_index_status(p, Status.RESOLVED.value),
                 entry.last_failed_at, entry.id],
            ]))
        done = AtomicWriter(self.client).run(items)
        return [item.guard[1].rsplit(":", 1)[1] for item, ok in zip(items, done, strict=True)
                if ok]
