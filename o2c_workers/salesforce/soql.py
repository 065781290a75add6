"""SOQL text built from parts: names checked, strings quoted, dateTimes as literals."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def name(value: str) -> str:
    """An sObject or field API name; anything else is refused before it reaches a query."""
    if not _NAME.match(value):
        raise ValueError(f"not a Salesforce API name: {value!r}")
    return value


def quote(value: str) -> str:
    """A string literal, quotes and backslashes escaped."""
    return "'" + value.translate(_ESCAPES) + "'"


def datetime_literal(epoch_s: float) -> str:
    """An unquoted dateTime literal in UTC, to the second below ``epoch_s``."""
    return datetime.fromtimestamp(int(epoch_s), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def select(sobject: str, fields: Sequence[str], *, where: Sequence[str] = (),
           order_by: Sequence[str] = (), limit: int | None = None) -> str:
    """``SELECT fields FROM sobject [WHERE a AND b] [ORDER BY ...] [LIMIT n]``."""
    # Names are checked and values quoted by the functions above.
    text = f"SELECT {', '.join(name(f) for f in fields)} FROM {name(sobject)}"  # noqa: S608
    if where:
        text += " WHERE " + " AND ".join(where)
    if order_by:
        text += " ORDER BY " + ", ".join(name(f) for f in order_by)
    if limit is not None:
        text += f" LIMIT {int(limit)}"
    return text
