"""Frappe's error answers, and the money and JSON conventions of the wire.

A Frappe error answer (API v1) is a JSON object::

    {"exc_type": "ValidationError",
     "exception": "frappe.exceptions.ValidationError: <message>",
     "_server_messages": "[\\"{\\\\\\"message\\\\\\": \\\\\\"<message>\\\\\\", ...}\\"]"}

``_server_messages`` is a JSON string holding a list of JSON strings, each one message
object (``message``, ``title``, ``indicator``, ``raise_exception``).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")

#: Where each exc_type lives in Frappe/ERPNext, for the ``exception`` line.
_MODULES = {
    "PartyFrozen": "erpnext.exceptions",
}


class FrappeError(Exception):
    """An answer Frappe would give: HTTP status, exception class name and message."""

    def __init__(self, status: int, exc_type: str, message: str, *, title: str = "Message",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.exc_type = exc_type
        self.message = message
        self.title = title
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        module = _MODULES.get(self.exc_type, "frappe.exceptions")
        server_message = json.dumps({"message": self.message, "title": self.title,
                                     "indicator": "red", "raise_exception": 1})
        return {
            "exc_type": self.exc_type,
            "exception": f"{module}.{self.exc_type}: {self.message}",
            "_server_messages": json.dumps([server_message]),
        }


def validation(message: str, exc_type: str = "ValidationError") -> FrappeError:
    """A 417 refusal, the status Frappe gives every ValidationError subclass."""
    return FrappeError(417, exc_type, message)


def not_found(doctype: str, name: str) -> FrappeError:
    return FrappeError(404, "DoesNotExistError", f"{doctype} {name} not found")


def money(value: Any) -> Decimal:
    """``value`` as a Decimal rounded to the cent, half up; refuses what is not a number."""
    if isinstance(value, bool) or value is None:
        raise validation(f"Invalid amount: {value!r}")
    try:
        number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise validation(f"Invalid amount: {value!r}") from None
    if not number.is_finite():
        raise validation(f"Invalid amount: {value!r}")
    return number.quantize(CENT, rounding=ROUND_HALF_UP)


def number(value: Any, what: str) -> Decimal:
    """``value`` as an unrounded Decimal (quantities, percentages)."""
    if isinstance(value, bool) or value is None:
        raise validation(f"Invalid {what}: {value!r}")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise validation(f"Invalid {what}: {value!r}") from None
    if not result.is_finite():
        raise validation(f"Invalid {what}: {value!r}")
    return result


def _default(obj: Any) -> Any:
    # Frappe answers numbers, not strings: a 2-dp Decimal becomes the float whose shortest
    # repr is the same digits, so a client parsing with parse_float=Decimal gets it exactly.
    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, dt.datetime | dt.date):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, default=_default, separators=(",", ":")).encode()


def loads(raw: bytes | str) -> Any:
    """Parse JSON with every non-integer number as a Decimal."""
    return json.loads(raw, parse_float=Decimal)
