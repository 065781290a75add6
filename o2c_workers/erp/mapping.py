"""How ERPNext's refusals map onto the error tree and the catalogue's categories.

The HTTP client (``http.py``) is the one caller. A 417 answer is a business refusal unless
its ``exc_type`` says "duplicate" or "slow down"; its category comes from the first rule of
``RULES`` that matches ``"<exc_type>: <message>"``, else ``erp_validation``.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from o2c_workers.catalogue import (
    CREDIT_HOLD,
    ERP_VALIDATION,
    PRICE_MISMATCH,
    TAX_CONFIGURATION,
    UNKNOWN_ITEM,
)

__all__ = ["CREDIT_HOLD", "ERP_VALIDATION", "PRICE_MISMATCH", "RULES", "TAX_CONFIGURATION",
           "UNKNOWN_ITEM", "categorize"]

#: First match wins; each pattern is searched in ``"<exc_type>: <message>"``.
RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (CREDIT_HOLD, re.compile(r"^PartyFrozen:|Credit limit has been crossed", re.I)),
    (TAX_CONFIGURATION, re.compile(r"Tax configuration missing", re.I)),
    (UNKNOWN_ITEM, re.compile(r"Could not find Row #\d+: Item Code", re.I)),
    (PRICE_MISMATCH, re.compile(
        r"Price mismatch|Item Price not found|Price List not found for currency"
        r"|Price List .+ currency .+ does not match", re.I)),
)

#: ``exc_type`` values meaning the unique Salesforce id is taken (409, or 417 for a unique
#: custom field in a real ERPNext).
DUPLICATE_EXC_TYPES = frozenset({"DuplicateEntryError", "UniqueValidationError"})
#: ``exc_type`` values meaning "slow down", whatever the status.
THROTTLE_EXC_TYPES = frozenset({"TooManyRequestsError", "QueryDeadlockError",
                                "QueryTimeoutError"})

#: ``exc_type`` of Frappe's maintenance answer (``maintenance_mode`` on, or a migration
#: running): HTTP 503, "The system is being updated".
MAINTENANCE_EXC_TYPES = frozenset({"SessionStopped"})

#: Longest message kept from an answer, in characters.
MAX_MESSAGE_CHARS = 500

_TAG = re.compile(r"<[^>]+>")


def categorize(exc_type: str | None, message: str) -> str:
    """The business category of a refusal (``erp_validation`` when no rule matches)."""
    subject = f"{exc_type or ''}: {message}"
    for category, pattern in RULES:
        if pattern.search(subject):
            return category
    return ERP_VALIDATION


def message_of(body: Any, *, fallback: str) -> str:
    """The human message of a Frappe error answer, as plain text."""
    messages = _server_messages(body) if isinstance(body, dict) else []
    if not messages and isinstance(body, dict):
        messages = [_strip_exc_prefix(str(body[k])) for k in ("exception", "message")
                    if body.get(k)][:1]
    if not messages and isinstance(body, str) and body.strip():
        messages = [body]
    text = "; ".join(_plain(m) for m in messages) or fallback
    return text[:MAX_MESSAGE_CHARS]


def exc_type_of(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("exc_type"), str):
        return str(body["exc_type"])
    return None


def _server_messages(body: dict[str, Any]) -> list[str]:
    """``_server_messages``: a JSON string holding a list of JSON strings of messages."""
    raw = body.get("_server_messages")
    if not isinstance(raw, str):
        return []
    try:
        items = json.loads(raw)
    except ValueError:
        return [raw]
    out = []
    for item in items if isinstance(items, list) else [items]:
        try:
            decoded = json.loads(item) if isinstance(item, str) else item
        except ValueError:
            decoded = item
        message = decoded.get("message") if isinstance(decoded, dict) else decoded
        if message:
            out.append(str(message))
    return out


def _strip_exc_prefix(text: str) -> str:
    """``frappe.exceptions.ValidationError: msg`` → ``msg``."""
    head, sep, rest = text.partition(": ")
    return rest if sep and "." in head and " " not in head else text


def _plain(text: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", text)).split())
