"""The operations on the dead-letter queue, as plain functions.

The ``o2c dlq`` command and the receiver's ``/admin/dlq`` API are thin layers over these;
ops scripts import them too::

    from o2c_workers.dlq import ops
    from o2c_workers.receiver.replan import build_dlq
    dlq = build_dlq(load_settings(), actor="nightly-script")
    report = ops.requeue(dlq, where=Filter.build(category="exhausted", since="1d"))
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import redis

from o2c_workers import timeline
from o2c_workers.dlq import claims
from o2c_workers.dlq import edit as editing
from o2c_workers.dlq.errors import Conflict, DlqError, EntryNotFound
from o2c_workers.dlq.models import DeadLetter, Status
from o2c_workers.dlq.query import Filter, Page, iso
from o2c_workers.dlq.requeue import Planner, Publisher
from o2c_workers.dlq.store import DeadLetterStore, redacted
from o2c_workers.redact import redact_text

Progress = Callable[[int], None]
UNCHANGED: Any = object()


@dataclass
class Dlq:
    """What every operation needs: the store, the requeue planner, and who is acting."""

    store: DeadLetterStore
    replanner: Planner
    actor: str = "ops"
    #: The broker's publisher when it is not the state's Redis (RabbitMQ): requeues then
    #: claim, publish and mark (``requeue_one``). None: the requeue's script pushes.
    publisher: Publisher | None = None

    @property
    def prefix(self) -> str:
        return self.store.prefix


@dataclass
class Listing:
    page: Page
    entries: list[DeadLetter]


@dataclass
class Report:
    """What a bulk operation did to each entry it was asked about."""

    action: str
    dry_run: bool = False
    done: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "dry_run": self.dry_run, "count": len(self.done),
                "refused_count": len(self.refused), "done": self.done, "refused": self.refused}


def summary(entry: DeadLetter, *, now: float | None = None) -> dict[str, Any]:
    """The columns of a listing (the message as people see it, secrets masked)."""
    now = time.time() if now is None else now
    return {"id": entry.id, "status": entry.status.value, "category": entry.category,
            "domain": entry.domain, "task": entry.task, "trace_key": entry.trace_key,
            "error_class": entry.error_class, "message": redact_text(entry.message),
            "attempts": entry.attempts, "last_failed_at": iso(entry.last_failed_at),
            "age_s": round(now - entry.first_failed_at, 1)}


def as_json(entry: DeadLetter) -> dict[str, Any]:
    """An entry for people and files (``redacted``), times in ISO 8601 too."""
    data = redacted(entry).model_dump(mode="json")
    for name in ("first_failed_at", "last_failed_at", "requeued_at", "resolved_at",
                 "purged_at", "edited_at"):
        data[f"{name}_iso"] = iso(data.get(name))
    return data


def select(dlq: Dlq, ids: Iterable[str] | None, where: Filter | None) -> list[str]:
    """The ids named (deduplicated, in order; an empty list selects nothing), else every id
    matching ``where``."""
    if ids is not None:
        return list(dict.fromkeys(ids))
    if where is None:
        raise DlqError("name entry ids, or give a filter (or everything, explicitly)")
    return list(dlq.store.iter_ids(where))


def _entry(dlq: Dlq, entry_id: str) -> DeadLetter:
    entry = dlq.store.get(entry_id)
    if entry is None:
        raise EntryNotFound(f"no dead letter {entry_id!r}")
    return entry


# --- reading ----------------------------------------------------------------------------------

def list_entries(dlq: Dlq, where: Filter | None = None, *, offset: int = 0, limit: int = 50,
                 newest_first: bool = False) -> Listing:
    dlq.store.prune()
    page = dlq.store.query(where or Filter(), offset=offset, limit=limit,
                           newest_first=newest_first)
    return Listing(page, dlq.store.many(page.ids))


def show(dlq: Dlq, entry_id: str) -> DeadLetter:
    """One entry as people see it (``redacted``)."""
    return redacted(_entry(dlq, entry_id))


def history(dlq: Dlq, entry_id: str) -> list[dict[str, Any]]:
    """The audit records of one entry, newest first."""
    return dlq.store.audit_log(count=10_000, entry_id=entry_id)


def stats(dlq: Dlq) -> dict[str, Any]:
    dlq.store.prune()
    return dlq.store.stats()


def export(dlq: Dlq, where: Filter | None, out: IO[str]) -> int:
    """Write the matching entries as JSON lines; return how many."""
    written = 0
    ids = list(dlq.store.iter_ids(where or Filter(status=None)))
    for start in range(0, len(ids), 500):
        for entry in dlq.store.many(ids[start:start + 500]):
            out.write(json.dumps(as_json(entry), default=str) + "\n")
            written += 1
    return written


# --- changing ---------------------------------------------------------------------------------

def requeue_one(dlq: Dlq, entry_id: str, *, dry_run: bool = False, reclaim: bool = False,
                now: float | None = None) -> dict[str, Any]:
    """Put one open entry's work back on its queue and mark it requeued, at most once.

    On a Redis broker it is one atomic write, the LPUSH first: if it fails, the entry has
    not changed and can be requeued again. The write is a compare-and-set on the entry, so
    of two operators requeueing it at once exactly one succeeds. On RabbitMQ it is a claim,
    a confirmed publish and a mark (``claims.requeue_published``). ``reclaim`` also takes an entry
    left ``requeuing`` by a requeue that died after its claim.
    """
    now = time.time() if now is None else now
    entry = _entry(dlq, entry_id)
    takes = (Status.OPEN, Status.REQUEUING) if reclaim else (Status.OPEN,)
    if entry.status not in takes:
        hint = (": a requeue claimed it and has not marked it requeued; if that requeue "
                "died, requeue it again with --reclaim (its message may be on its queue "
                "already)") if entry.status is Status.REQUEUING else ", not open"
        raise Conflict(f"dead letter {entry_id} is {entry.status.value}{hint}")
    plan = dlq.replanner.plan(entry, now=now)
    outcome = {"id": entry.id, **plan.describe()}
    if dry_run:
        return outcome
    if dlq.publisher is not None:
        return claims.requeue_published(dlq.store, dlq.publisher, entry, plan, outcome,
                                        actor=dlq.actor, now=now)
    item = dlq.store.change(
        entry, status=Status.REQUEUED, now=now, before=[plan.push],
        fields={"requeued_task_id": plan.task_id, "requeued_at": now},
        after=claims.requeued_ops(dlq.store, entry, plan, actor=dlq.actor, now=now))
    [applied] = dlq.store.run([item])
    if not applied:
        raise Conflict(f"dead letter {entry_id} changed meanwhile (requeued, edited or "
                       "resolved by someone else); look at it again")
    return outcome


def _each(dlq: Dlq, report: Report, ids: list[str], progress: Progress | None,
          action: Callable[[str], dict[str, Any]]) -> Report:
    for entry_id in ids:
        try:
            report.done.append(action(entry_id))
        except DlqError as exc:
            report.refused.append({"id": entry_id, "reason": exc.message})
        except redis.ResponseError as exc:
            report.refused.append({"id": entry_id, "reason": f"Redis refused the write: {exc}"})
        if progress is not None:
            progress(1)
    return report


def requeue(dlq: Dlq, ids: Iterable[str] | None = None, *, where: Filter | None = None,
            dry_run: bool = False, reclaim: bool = False,
            progress: Progress | None = None) -> Report:
    """Requeue the entries named, or every entry matching ``where``; one report for all
    (``reclaim``: entries left ``requeuing`` too)."""
    chosen = select(dlq, ids, where)
    return _each(dlq, Report("requeue", dry_run), chosen, progress,
                 lambda i: requeue_one(dlq, i, dry_run=dry_run, reclaim=reclaim))


def purge_one(dlq: Dlq, entry_id: str, *, reason: str = "", now: float | None = None,
              dry_run: bool = False) -> dict[str, Any]:
    now = time.time() if now is None else now
    entry = _entry(dlq, entry_id)
    if entry.status is not Status.OPEN:
        raise Conflict(f"dead letter {entry_id} is {entry.status.value}, not open")
    outcome = {"id": entry.id, "category": entry.category, "trace_key": entry.trace_key}
    if dry_run:
        return outcome
    # People closed the transaction when this was its last open dead letter: it is no
    # longer in flight, so it can never count as stalled (nor be re-driven by a sweep).
    last_open = dlq.store.ids(trace_key=entry.trace_key) == [entry.id]
    item = dlq.store.change(entry, status=Status.PURGED, now=now, fields={"purged_at": now},
                            after=[dlq.store.audit_op("purge", entry.id, actor=dlq.actor,
                                                      now=now, reason=reason, **outcome),
                                   *timeline.record_ops(
                                       dlq.prefix, entry.trace_key, "dead_letter_purged",
                                       at=now, closes=last_open, dead_letter=entry.id,
                                       actor=dlq.actor, reason=reason or None)])
    if not dlq.store.run([item])[0]:
        raise Conflict(f"dead letter {entry_id} changed meanwhile; look at it again")
    return outcome


def purge(dlq: Dlq, ids: Iterable[str] | None = None, *, where: Filter | None = None,
          reason: str = "", dry_run: bool = False, progress: Progress | None = None) -> Report:
    """Close open entries without running them; each leaves an audit record."""
    chosen = select(dlq, ids, where)
    return _each(dlq, Report("purge", dry_run), chosen, progress,
                 lambda i: purge_one(dlq, i, reason=reason, dry_run=dry_run))


def edit(dlq: Dlq, entry_id: str, *, payload: Any = UNCHANGED,
         sets: Iterable[str | tuple[str, Any]] = (), now: float | None = None) -> DeadLetter:
    """Replace the payload, or set dotted paths in it; validate, then save atomically.

    Paths are set in the stored, exact payload. A whole new payload may start from what
    ``show`` gave (``$EDITOR``, an API client): every value left as the view showed it is
    saved as stored, never as its mask. The result is saved exactly (secret and personal
    fields masked by name, as always). The first payload is kept in ``original_payload``
    for audit. An invalid result raises ``InvalidEdit`` and changes nothing.
    """
    now = time.time() if now is None else now
    entry = _entry(dlq, entry_id)
    if entry.status is not Status.OPEN:
        raise Conflict(f"dead letter {entry_id} is {entry.status.value}; only open ones "
                       "are edited")
    assignments = [editing.parse_assignment(s) if isinstance(s, str) else s for s in sets]
    new = entry.payload if payload is UNCHANGED else editing.restore_shown(
        payload, shown=redacted(entry).payload, stored=entry.payload)
    new = editing.apply_sets(entry, new, assignments)
    editing.validate(entry, new)
    dlq.replanner.validate(entry, new)
    fields: dict[str, Any] = {"payload": new, "edited_at": now}
    if entry.original_payload is None:
        fields["original_payload"] = entry.payload
    if entry.task:
        fields["args"] = editing.args_for(entry, new)
    changed = [path for path, _ in assignments] or ["payload"]
    item = dlq.store.change(entry, now=now, fields=fields, after=[
        dlq.store.audit_op("edit", entry.id, actor=dlq.actor, now=now, paths=changed)])
    if not dlq.store.run([item])[0]:
        raise Conflict(f"dead letter {entry_id} changed meanwhile; look at it again")
    return _entry(dlq, entry_id)
