"""What ops ask the dead-letter queue for: a filter, a page of answers, and ages in words."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from o2c_workers.dlq.errors import BadFilter
from o2c_workers.dlq.models import Status

#: ``30s``, ``15m``, ``2h``, ``3d``, ``1w``: seconds per unit.
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
#: The most entries one page may hold.
MAX_PAGE = 1000


def parse_since(value: str | float | None, *, now: float | None = None) -> float | None:
    """``2h`` / ``3d`` (that long ago), an ISO date or datetime, or epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    now = time.time() if now is None else now
    match = _AGE.match(value)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2).lower()]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadFilter(f"--since {value!r}: use 30m, 2h, 3d, 1w or an ISO date") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_status(value: str | Status | None) -> Status | None:
    """A status name; ``all`` (or None) means every status."""
    if value is None or isinstance(value, Status):
        return value
    if value.lower() == "all":
        return None
    try:
        return Status(value.lower())
    except ValueError:
        names = ", ".join([*(s.value for s in Status), "all"])
        raise BadFilter(f"unknown status {value!r}; use one of {names}") from None


@dataclass(frozen=True)
class Filter:
    """Entries matching every field given; ``status=None`` matches every status."""

    status: Status | None = Status.OPEN
    category: str | None = None
    domain: str | None = None
    trace_key: str | None = None
    #: Last failure at or after this time (epoch s).
    since: float | None = None

    @classmethod
    def build(cls, *, status: str | Status | None = "open", category: str | None = None,
              domain: str | None = None, trace_key: str | None = None,
              since: str | float | None = None, now: float | None = None) -> Filter:
        """From what a person types (CLI options, query strings, JSON bodies)."""
        return cls(status=parse_status(status), category=category or None,
                   domain=domain or None, trace_key=trace_key or None,
                   since=parse_since(since, now=now))

    def describe(self) -> dict[str, Any]:
        return {"status": self.status.value if self.status else "all",
                "category": self.category, "domain": self.domain,
                "trace_key": self.trace_key, "since": self.since}


@dataclass(frozen=True)
class Page:
    """One page of entry ids, and how many match in all."""

    ids: list[str]
    total: int
    offset: int
    limit: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.ids)
        return end if end < self.total else None


def age_text(seconds: float) -> str:
    """``3d 4h``, ``12m``: how long ago, for tables."""
    seconds = max(0, int(seconds))
    for unit, size, smaller, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if seconds >= size:
            rest = (seconds % size) // small_size
            return f"{seconds // size}{unit}" + (f" {rest}{smaller}" if rest else "")
    return f"{seconds // 60}m" if seconds >= 60 else f"{seconds}s"


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")

