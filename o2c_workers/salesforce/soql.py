"""SOQL text built from parts: names checked, strings quoted, ids validated, dateTimes as
literals; relationship fields (``Account.Name``) and parent-to-child subqueries
(``(SELECT ... FROM OpportunityLineItems)``) as Salesforce spells them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from o2c_workers import sfid

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def name(value: str) -> str:
    """An sObject or field API name; anything else is refused before it reaches a query."""
    if not _NAME.match(value):
        raise ValueError(f"not a Salesforce API name: {value!r}")
    return value


def path(value: str) -> str:
    """A field, or a relationship field's dot path (``Account.BillingCountry``), each part
    an API name."""
    for part in value.split("."):
        name(part)
    return value


def quote(value: str) -> str:
    """A string literal, quotes and backslashes escaped."""
    return "'" + value.translate(_ESCAPES) + "'"


def ids_in(field: str, ids: Sequence[str]) -> str:
    """``field IN ('id', ...)``; each id must be a well-formed Salesforce id."""
    if not ids:
        raise ValueError(f"an IN list on {field} needs at least one id")
    bad = [i for i in ids if not isinstance(i, str) or not sfid.is_valid(i)]
    if bad:
        raise ValueError(f"not a Salesforce record id: {bad[0]!r}")
    return f"{path(field)} IN ({', '.join(quote(i) for i in ids)})"


def datetime_literal(epoch_s: float) -> str:
    """An unquoted dateTime literal in UTC, to the second below ``epoch_s``."""
    return datetime.fromtimestamp(int(epoch_s), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Subquery:
    """A parent-to-child subquery: ``relationship`` is the child relationship's name
    (``OpportunityLineItems``), not the child's object type."""

    relationship: str
    fields: Sequence[str]

    def text(self) -> str:
        return f"({select(self.relationship, self.fields)})"


def select(sobject: str, fields: Sequence[str], *, children: Sequence[Subquery] = (),
           where: Sequence[str] = (), order_by: Sequence[str] = (),
           limit: int | None = None) -> str:
    """``SELECT fields, (children) FROM sobject [WHERE a AND b] [ORDER BY ...] [LIMIT n]``."""
    items = [path(f) for f in fields] + [child.text() for child in children]
    # Names are checked and values quoted by the functions above.
    text = f"SELECT {', '.join(items)} FROM {name(sobject)}"  # noqa: S608
    if where:
        text += " WHERE " + " AND ".join(where)
    if order_by:
        text += " ORDER BY " + ", ".join(path(f) for f in order_by)
    if limit is not None:
        text += f" LIMIT {int(limit)}"
    return text
