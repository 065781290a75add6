"""What a step hands the outbox: one record's fields, and the version they come from."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from o2c_workers import sfid


def stamp_of(modified: str | None) -> int:
    """The ERP document's ``modified`` as a number that orders its versions (microseconds
    of the naive time: every document of one site is in the site's zone); 0 when absent or
    not a time, which orders before every real version."""
    if not modified:
        return 0
    try:
        when = dt.datetime.fromisoformat(modified.strip())
    except ValueError:
        return 0
    naive = when.replace(tzinfo=None) - dt.datetime(1970, 1, 1)
    return naive.days * 86_400_000_000 + naive.seconds * 1_000_000 + naive.microseconds


@dataclass(frozen=True)
class Write:
    """Set ``fields`` on one Salesforce record, as of the ERP document version ``stamp``.

    A field keeps the value of the newest version written (``stamp_of``): an older one is
    refused, an equal one replaces it. ``trace_key`` and ``source`` (the ERP document, for
    people) go into a dead letter if Salesforce refuses the record."""

    sobject: str
    record_id: str
    fields: dict[str, Any]
    stamp: int
    trace_key: str
    source: str = ""
    #: Per field, when some fields come from other versions than ``stamp``.
    stamps: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not sfid.is_valid(self.record_id):
            raise ValueError(f"not a Salesforce record id: {self.record_id!r}")
        if not self.fields:
            raise ValueError("a write sets at least one field")

    @property
    def member(self) -> str:
        """The record's one name in the outbox (its 18-character id)."""
        return f"{self.sobject}:{sfid.to18(self.record_id)}"

    def stamp_for(self, name: str) -> int:
        return self.stamps.get(name, self.stamp)

    def dump(self) -> dict[str, Any]:
        """JSON for a dead letter's replay (``load`` reads it back)."""
        return {"sobject": self.sobject, "record_id": self.record_id,
                "fields": self.fields, "stamp": self.stamp, "stamps": self.stamps,
                "trace_key": self.trace_key, "source": self.source}

    @classmethod
    def load(cls, data: dict[str, Any]) -> Write:
        return cls(sobject=str(data["sobject"]), record_id=str(data["record_id"]),
                   fields=dict(data["fields"]), stamp=int(data.get("stamp") or 0),
                   stamps={k: int(v) for k, v in (data.get("stamps") or {}).items()},
                   trace_key=str(data["trace_key"]), source=str(data.get("source") or ""))


def encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
