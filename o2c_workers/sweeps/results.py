"""What a sweep found and did, record by record, and the figures it reports."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: What became of a record a sweep saw:
#:   started / would_start      - its chain was (or, with --dry-run, would be) started
#:   already_started            - a notification took the same version in at that moment
#:   running                    - its transaction is in flight (a stalled one is re-driven)
#:   done                       - this version was taken in before and is no longer in flight
#:                                  (the ERP change feed: taken in by a webhook or a poll)
#:   dead_lettered              - it has a dead letter open, or requeuing (a requeue's claim,
#:                                  ``--reclaim`` if that requeue died): people decide
#:   invalid / unrouted         - it fails validation, or no route takes it
#:   redriven / would_redrive   - a stalled transaction started again from its first step
#:   left                       - stalled, but its record is gone or no longer routed
OUTCOMES = ("started", "would_start", "already_started", "running", "done", "dead_lettered",
            "invalid", "unrouted", "redriven", "would_redrive", "left")
#: Outcomes that put a chain on a queue.
STARTING = frozenset({"started", "redriven"})


@dataclass(frozen=True)
class Found:
    """One record a sweep saw, and what became of it."""

    trace_key: str
    outcome: str
    #: Its LastModifiedDate (epoch s), or, for a stalled transaction, its last progress.
    modified_at: float | None = None
    name: str | None = None


@dataclass
class SweepResult:
    """One sweep (``opportunities``, ``accounts`` or ``stalled``) of one run."""

    sweep: str
    since: float | None
    dry_run: bool = False
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    #: The durable watermark after this sweep (None: not moved, or none kept).
    watermark: float | None = None
    #: SOQL calls made (one a page): what the sweep cost of the Salesforce API allocation.
    api_calls: int = 0
    found: list[Found] = field(default_factory=list)
    #: ERP master documents whose cached data the change feed dropped (or, dry, would).
    invalidated: int = 0

    @property
    def seen(self) -> int:
        return len(self.found)

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(f.outcome for f in self.found)
        return {name: counts[name] for name in OUTCOMES if counts[name]}

    @property
    def started(self) -> int:
        return sum(f.outcome in STARTING for f in self.found)

    def as_dict(self, *, records: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sweep": self.sweep, "since": self.since, "dry_run": self.dry_run,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "watermark": self.watermark, "api_calls": self.api_calls, "seen": self.seen,
            "started": self.started, "outcomes": self.counts}
        if self.invalidated:
            data["invalidated"] = self.invalidated
        if records:
            data["records"] = [{"trace_key": f.trace_key, "outcome": f.outcome,
                                "modified_at": f.modified_at, "name": f.name}
                               for f in self.found]
        return data


@dataclass
class RunResult:
    """One run of every sweep, in order."""

    sweeps: list[SweepResult] = field(default_factory=list)
    #: (used, allocation) of the org's daily API requests after the run, when known.
    api_usage: tuple[int, int] | None = None

    @property
    def api_calls(self) -> int:
        return sum(s.api_calls for s in self.sweeps)

    def as_dict(self, *, records: bool = False) -> dict[str, Any]:
        return {"api_calls": self.api_calls,
                "api_usage": list(self.api_usage) if self.api_usage else None,
                "sweeps": [s.as_dict(records=records) for s in self.sweeps]}
