"""JSON request bodies in which money stays ``Decimal`` and never passes through float."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any


def dumps(value: Any) -> str:
    """JSON text for ``value``; a ``Decimal`` is written as a plain JSON number.

    Floats are refused: an amount that became a float has already lost its exact value.
    Datetimes must be timezone-aware and go out in UTC, as Salesforce writes them.
    """
    if isinstance(value, Mapping):
        pairs = (f"{json.dumps(str(key))}:{dumps(item)}" for key, item in value.items())
        return "{" + ",".join(pairs) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(item) for item in value) + "]"
    if value is None or isinstance(value, str | bool | int):
        return json.dumps(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a number Salesforce accepts: {value}")
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime is ambiguous; pass a timezone-aware one")
        return json.dumps(value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    if isinstance(value, float):
        raise TypeError("floats are refused in Salesforce payloads: pass a Decimal")
    raise TypeError(f"cannot send {type(value).__name__} to Salesforce")
