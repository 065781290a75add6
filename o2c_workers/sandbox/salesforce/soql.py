"""A small, honest subset of SOQL: what the fleet's reads and sweeps send, no more.

``SELECT item, ... FROM Type [WHERE cond AND cond ...] [ORDER BY f [ASC|DESC], ...]
[LIMIT n]``, where an item is a field, a relationship field (``Account.Name``, a dot path
through parent lookups) or a parent-to-child subquery by the child relationship's name
(``(SELECT Id, Quantity FROM OpportunityLineItems [WHERE ...] [ORDER BY ...] [LIMIT n])``,
one level deep); a condition is ``field op literal`` (``=``, ``!=``, ``<``, ``<=``, ``>``,
``>=``) or ``field IN (literal, ...)``, and a literal is a quoted string, ``null``,
``true``, ``false``, a number, a date (``2026-11-28``) or an unquoted dateTime
(``2026-11-28T00:00:00Z``, ``...T00:00:00.000+01:00``). Anything else is refused the way
Salesforce refuses it: 400 ``MALFORMED_QUERY``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from o2c_workers.sandbox.salesforce.store import SObjectError

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,3})?(?:Z|[+-]\d\d:\d\d))
    | (?P<date>\d{4}-\d\d-\d\d)
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    )""", re.VERBOSE)
_OPERATORS = {"=", "!=", "<>", "<", "<=", ">", ">="}
_ESCAPES = {"\\'": "'", '\\"': '"', "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t"}
_NULL = object()


def malformed(message: str) -> SObjectError:
    return SObjectError(400, "MALFORMED_QUERY", message)


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    #: One value, or the list of an ``IN``; ``None`` is SOQL's ``null``.
    value: Any

    def matches(self, row: dict[str, Any], same_id: Callable[[str, str], bool]) -> bool:
        have = row.get(self.field)
        if self.op == "IN":
            return any(_equal(self.field, have, v, same_id) for v in self.value)
        if self.op == "=":
            return _equal(self.field, have, self.value, same_id)
        if self.op in ("!=", "<>"):
            return not _equal(self.field, have, self.value, same_id)
        if have is None or self.value is None:
            return False
        left, right = _comparable(self.field, have, self.value)
        return bool({"<": left < right, "<=": left <= right, ">": left > right,
                     ">=": left >= right}[self.op])


@dataclass(frozen=True)
class Order:
    field: str
    descending: bool = False


@dataclass
class Query:
    #: The object type; in a subquery, the child relationship's name.
    sobject: str
    #: Fields and dot paths (``Account.Name``), in the order asked.
    fields: list[str]
    where: list[Condition] = field(default_factory=list)
    order: list[Order] = field(default_factory=list)
    limit: int | None = None
    #: Parent-to-child subqueries, in the order asked.
    children: list[Query] = field(default_factory=list)

    def names(self) -> list[str]:
        """Every field the query names, to be checked against the object."""
        return [*self.fields, *(c.field for c in self.where), *(o.field for o in self.order)]

    def run(self, rows: Sequence[dict[str, Any]],
            same_id: Callable[[str, str], bool]) -> list[dict[str, Any]]:
        """The rows that match, in order, at most ``limit``."""
        out = [row for row in rows if all(c.matches(row, same_id) for c in self.where)]
        for key in reversed(self.order):
            # Nulls sort first ascending and last descending, as in Salesforce.
            out.sort(key=partial(_sort_key, key.field), reverse=key.descending)
        return out if self.limit is None else out[:self.limit]


def _sort_key(name: str, row: dict[str, Any]) -> tuple[bool, Any]:
    value = row.get(name)
    return value is not None, "" if value is None else value


def _equal(name: str, have: Any, want: Any, same_id: Callable[[str, str], bool]) -> bool:
    if want is None or have is None:
        return want is None and have is None
    if (name == "Id" or name.endswith("Id")) and isinstance(have, str) and isinstance(want, str):
        return same_id(have, want)
    left, right = _comparable(name, have, want)
    return bool(left == right)


def _comparable(name: str, have: Any, want: Any) -> tuple[Any, Any]:
    """Both sides of a comparison, or the refusal Salesforce gives for a literal of the
    wrong kind (a quoted dateTime, a string against a number)."""
    if isinstance(have, datetime):
        if not isinstance(want, datetime):
            raise malformed(f"value of filter criterion for field '{name}' must be of type "
                            "dateTime and should not be enclosed in quotes")
        return have, want
    if isinstance(have, date):
        if not isinstance(want, date) or isinstance(want, datetime):
            raise malformed(f"value of filter criterion for field '{name}' must be of type "
                            "date and should not be enclosed in quotes")
        return have, want
    if isinstance(have, bool) or isinstance(want, bool):
        if not (isinstance(have, bool) and isinstance(want, bool)):
            raise malformed(f"value of filter criterion for field '{name}' must be of type "
                            "boolean and should not be enclosed in quotes")
        return have, want
    if isinstance(have, int | Decimal):
        if not isinstance(want, Decimal):
            raise malformed(f"value of filter criterion for field '{name}' must be of type "
                            "double and should not be enclosed in quotes")
        return Decimal(have), want
    if not isinstance(want, str):
        raise malformed(f"value of filter criterion for field '{name}' must be of type "
                        "string and should be enclosed in quotes")
    return str(have), want


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            raise malformed(f"unexpected token: '{text[pos:].strip().split()[0]}'")
        out.append((match.lastgroup, match.group(match.lastgroup)))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise malformed("unexpected end of query")
        self.pos += 1
        return token

    def keyword(self, *words: str) -> bool:
        """Consume the keywords ``words`` if they come next."""
        ahead = self.tokens[self.pos:self.pos + len(words)]
        if len(ahead) == len(words) and all(kind == "name" and value.upper() == word
                                            for (kind, value), word in zip(ahead, words,
                                                                           strict=True)):
            self.pos += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.keyword(*words):
            token = self.peek()
            raise malformed(f"unexpected token: '{token[1] if token else 'end of query'}', "
                            f"expected {' '.join(words)}")

    def name(self) -> str:
        kind, value = self.take()
        if kind != "name":
            raise malformed(f"unexpected token: '{value}'")
        return value

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            return re.sub(r"\\.", lambda m: _ESCAPES.get(m.group(0), m.group(0)), value[1:-1])
        if kind == "datetime":
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        if kind == "date":
            return date.fromisoformat(value)
        if kind == "number":
            return Decimal(value)
        if kind == "name" and value.lower() in ("null", "true", "false"):
            return {"null": None, "true": True, "false": False}[value.lower()]
        raise malformed(f"unexpected token: '{value}'")

    def condition(self) -> Condition:
        name = self.name()
        if self.keyword("IN"):
            if self.take() != ("punct", "("):
                raise malformed("unexpected token after IN, expected '('")
            values = [self.literal()]
            while self.peek() == ("punct", ","):
                self.take()
                values.append(self.literal())
            if self.take() != ("punct", ")"):
                raise malformed("unexpected token in IN list, expected ')'")
            return Condition(name, "IN", values)
        kind, op = self.take()
        if kind != "op" or op not in _OPERATORS:
            raise malformed(f"unexpected token: '{op}'")
        return Condition(name, op, self.literal())

    def order(self) -> list[Order]:
        out = []
        while True:
            name = self.name()
            descending = self.keyword("DESC")
            if not descending:
                self.keyword("ASC")
            out.append(Order(name, descending))
            if self.peek() != ("punct", ","):
                return out
            self.take()

    def select_list(self, *, nested: bool) -> tuple[list[str], list[Query]]:
        fields: list[str] = []
        children: list[Query] = []
        while True:
            if self.peek() == ("punct", "("):
                if nested:
                    raise malformed("a subquery cannot hold another subquery here (the "
                                    "sandbox answers one level of parent-to-child)")
                self.take()
                children.append(self.query(nested=True))
                if self.take() != ("punct", ")"):
                    raise malformed("unexpected token in a subquery, expected ')'")
            else:
                fields.append(self.name())
            if self.peek() != ("punct", ","):
                return fields, children
            self.take()

    def query(self, *, nested: bool = False) -> Query:
        self.expect("SELECT")
        fields, children = self.select_list(nested=nested)
        self.expect("FROM")
        query = Query(sobject=self.name(), fields=fields, children=children)
        if "." in query.sobject:
            raise malformed(f"unexpected token: '{query.sobject}'")
        if self.keyword("WHERE"):
            query.where.append(self.condition())
            while self.keyword("AND"):
                query.where.append(self.condition())
        if self.keyword("ORDER", "BY"):
            query.order = self.order()
        if self.keyword("LIMIT"):
            kind, value = self.take()
            if kind != "number" or not value.isdigit():
                raise malformed(f"unexpected token: '{value}', expected a row count")
            query.limit = int(value)
        token = self.peek()
        if token is not None and not (nested and token == ("punct", ")")):
            raise malformed(f"unexpected token: '{token[1]}'")
        return query


def parse(text: str) -> Query:
    """The query ``text`` asks, or 400 ``MALFORMED_QUERY``."""
    if not text.strip():
        raise malformed("the query is empty")
    return _Parser(text).query()
