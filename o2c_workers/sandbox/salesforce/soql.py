"""A very small SOQL: ``SELECT fields FROM Type [WHERE F = 'v' | F IN ('a', …)] [LIMIT n]``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from o2c_workers.sandbox.salesforce.store import SObjectError

_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<sobject>\w+)"
    r"(?:\s+WHERE\s+(?P<field>\w+)\s*(?:(?P<eq>=)\s*'(?P<value>[^']*)'"
    r"|\s+IN\s*\((?P<values>[^)]*)\)))?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$", re.IGNORECASE | re.DOTALL)
_QUOTED = re.compile(r"'([^']*)'")


@dataclass
class Query:
    sobject: str
    fields: list[str]
    field: str | None = None
    values: list[str] | None = None
    limit: int | None = None


def parse(text: str) -> Query:
    match = _QUERY.match(text)
    if match is None:
        raise SObjectError(400, "MALFORMED_QUERY",
                           f"unexpected token in query (the sandbox knows simple SELECTs): {text}")
    fields = [f.strip() for f in match["fields"].split(",") if f.strip()]
    values: list[str] | None = None
    if match["eq"]:
        values = [match["value"]]
    elif match["values"] is not None:
        values = _QUOTED.findall(match["values"])
    return Query(sobject=match["sobject"], fields=fields, field=match["field"], values=values,
                 limit=int(match["limit"]) if match["limit"] else None)
