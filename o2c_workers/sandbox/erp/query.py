"""The list query of ``GET /api/resource/{DocType}``: filters, fields, order and paging.

Filters come as JSON: a list of ``[field, op, value]`` (or ``[doctype, field, op, value]``)
or a dict of ``{field: value}`` / ``{field: [op, value]}``. Operators: ``=``, ``!=``, ``<``,
``>``, ``<=``, ``>=``, ``in``, ``not in``, ``like``, ``not like``, ``between``, ``is``
(``set`` / ``not set``). ``or_filters`` takes the same forms, any one matching.

``creation`` and ``modified`` compare as datetimes, as the database compares them
(``2026-11-20 13:40:22``, ``2026-11-20T13:40:22.5``, ``2026-11-20``); a value that is not
one answers 417. ``order_by`` takes several fields (``modified asc, name asc``); paging is
``limit_start`` and ``limit_page_length`` (``0``: every row).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from o2c_workers.sandbox.erp.errors import loads, validation

Doc = dict[str, Any]
Condition = tuple[str, str, Any]

#: Fields of every DocType that hold a datetime.
DATETIME_FIELDS = frozenset({"creation", "modified"})

#: Frappe's default page length for list calls.
DEFAULT_PAGE_LENGTH = 20


@dataclass
class ListQuery:
    filters: list[Condition]
    or_filters: list[Condition]
    fields: list[str]
    order_by: list[tuple[str, bool]]
    start: int
    page_length: int


def parse(params: dict[str, str]) -> ListQuery:
    """Read the query-string parameters of a list call; bad ones answer 417."""
    fields = _json_param(params, "fields", ["name"])
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise validation("fields must be a JSON list of field names")
    return ListQuery(
        filters=_conditions(_json_param(params, "filters", [])),
        or_filters=_conditions(_json_param(params, "or_filters", [])),
        fields=[_strip_table(f) for f in fields],
        order_by=_order(params.get("order_by") or "modified desc"),
        start=_int_param(params, "limit_start", 0),
        page_length=_int_param(params, "limit_page_length",
                               _int_param(params, "limit", DEFAULT_PAGE_LENGTH)),
    )


def run(query: ListQuery, docs: list[Doc]) -> list[Doc]:
    """Filter, order, page and project ``docs`` (in creation order)."""
    rows = [d for d in docs if all(_matches(d, c) for c in query.filters)]
    if query.or_filters:
        rows = [d for d in rows if any(_matches(d, c) for c in query.or_filters)]
    positions = {id(d): i for i, d in enumerate(docs)}
    for fieldname, descending in reversed(query.order_by):
        def key(doc: Doc, field: str = fieldname) -> tuple[Any, ...]:
            return (_sort_key(doc.get(field)), positions[id(doc)])
        rows.sort(key=key, reverse=descending)
    if query.page_length > 0:
        rows = rows[query.start:query.start + query.page_length]
    else:
        rows = rows[query.start:]
    return [_project(d, query.fields) for d in rows]


def _json_param(params: dict[str, str], key: str, default: Any) -> Any:
    raw = params.get(key)
    if raw in (None, ""):
        return default
    try:
        return loads(raw)
    except json.JSONDecodeError:
        raise validation(f"{key} is not valid JSON: {raw}") from None


def _int_param(params: dict[str, str], key: str, default: int) -> int:
    raw = params.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise validation(f"{key} must be an integer, not {raw!r}") from None
    if value < 0:
        raise validation(f"{key} must not be negative")
    return value


def _strip_table(fieldname: str) -> str:
    # Frappe accepts `tabSales Order`.`name` as well as name.
    return fieldname.split(".")[-1].strip("`").strip()


def _order(raw: str) -> list[tuple[str, bool]]:
    order = []
    for part in raw.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise validation(f"Invalid order_by: {raw}")
        order.append((_strip_table(words[0]), len(words) == 2 and words[1].lower() == "desc"))
    return order


def _conditions(raw: Any) -> list[Condition]:
    if isinstance(raw, dict):
        items: list[Any] = []
        for key, value in raw.items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                items.append([key, value[0], value[1]])
            else:
                items.append([key, "=", value])
        raw = items
    if not isinstance(raw, list):
        raise validation("filters must be a JSON list or object")
    conditions = []
    for item in raw:
        if not isinstance(item, list) or len(item) not in (3, 4):
            raise validation(f"Invalid filter: {item!r}")
        fieldname, op, value = item[-3:]
        op = str(op).lower().strip()
        if op not in _OPERATORS:
            raise validation(f"Invalid filter operator: {op}")
        conditions.append((_strip_table(str(fieldname)), op, value))
    return conditions


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, int | float | Decimal) and not isinstance(a, bool):
        try:
            return Decimal(str(a)), Decimal(str(b))
        except (InvalidOperation, ValueError):
            return str(a), str(b)
    return ("" if a is None else str(a)), ("" if b is None else str(b))


def _like(value: Any, pattern: Any) -> bool:
    return _like_regex(str(pattern)).fullmatch("" if value is None else str(value)) is not None


@functools.lru_cache(maxsize=1024)
def _like_regex(pattern: str) -> re.Pattern[str]:
    """A ``like`` pattern as a regex, built once per pattern, not once per row."""
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c)
                              for c in pattern), re.IGNORECASE | re.S)


def _in(value: Any, options: Any) -> bool:
    if isinstance(options, str):
        options = [o.strip() for o in options.split(",")]
    if not isinstance(options, list):
        raise validation("the value of an 'in' filter must be a list")
    return any(_cmp(value, o, lambda a, b: a == b) for o in options)


def _cmp(value: Any, other: Any, op: Callable[[Any, Any], bool]) -> bool:
    a, b = _comparable(value, other)
    return bool(op(a, b))


def _between(value: Any, bounds: Any) -> bool:
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise validation("the value of a 'between' filter must be a list of two")
    return _cmp(value, bounds[0], lambda a, b: a >= b) and \
        _cmp(value, bounds[1], lambda a, b: a <= b)


def _is(value: Any, what: Any) -> bool:
    is_set = value not in (None, "")
    if str(what).lower() == "set":
        return is_set
    if str(what).lower() == "not set":
        return not is_set
    raise validation("the value of an 'is' filter must be 'set' or 'not set'")


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda v, x: _cmp(v, x, lambda a, b: a == b),
    "!=": lambda v, x: _cmp(v, x, lambda a, b: a != b),
    "<": lambda v, x: _cmp(v, x, lambda a, b: a < b),
    ">": lambda v, x: _cmp(v, x, lambda a, b: a > b),
    "<=": lambda v, x: _cmp(v, x, lambda a, b: a <= b),
    ">=": lambda v, x: _cmp(v, x, lambda a, b: a >= b),
    "in": _in,
    "not in": lambda v, x: not _in(v, x),
    "like": _like,
    "not like": lambda v, x: not _like(v, x),
    "between": _between,
    "is": _is,
}


def _matches(doc: Doc, condition: Condition) -> bool:
    fieldname, op, value = condition
    if fieldname in DATETIME_FIELDS and op not in ("is", "like", "not like"):
        stamp = doc.get(fieldname)
        return _OPERATORS[op](None if stamp is None else _datetime(stamp), _datetimes(value))
    return _OPERATORS[op](doc.get(fieldname), value)


def _datetimes(value: Any) -> Any:
    if isinstance(value, list):
        return [_datetime(v) for v in value]
    if isinstance(value, str) and "," in value:
        return [_datetime(v.strip()) for v in value.split(",")]
    return _datetime(value)


def _datetime(value: Any) -> str:
    """A datetime in one sortable form (``2026-11-20T13:40:22.000000``); 417 if not one."""
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise validation(f"Invalid datetime: {value!r}") from None
    return parsed.replace(tzinfo=None).isoformat(timespec="microseconds")


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return (1, Decimal(str(value)))
    return (2, str(value))


def _project(doc: Doc, fields: list[str]) -> Doc:
    if "*" in fields:
        return {k: v for k, v in doc.items() if not isinstance(v, list)}
    return {f: doc.get(f) for f in fields}


