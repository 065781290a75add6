"""Keep secrets and personal data out of logs, dead letters and Sentry events."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

MASK = "[redacted]"

#: Keys whose values are never shown, matched case-insensitively as substrings.
SECRET_KEY_PARTS = (
    "password", "passwd", "secret", "token", "authorization", "api_key", "apikey",
    "sessionid", "session_id", "private_key", "cookie", "signature", "dsn",
)
#: Personal data fields of Salesforce and ERP records, matched case-insensitively.
PERSONAL_KEYS = frozenset({
    "email", "phone", "mobilephone", "fax", "homephone", "birthdate", "email_id",
    "mobile_no", "contact_email", "contact_mobile", "personemail",
})

_PATTERNS = (
    # Authorization: token key:secret / Bearer abc / Basic abc
    (re.compile(r"(?i)\b(token|bearer|basic)\s+[A-Za-z0-9._~+/=:-]{6,}"), r"\1 " + MASK),
    # token=..., password=..., secret=... in URLs and text
    (re.compile(r"(?i)\b(token|password|secret|api_key|sig|signature)=([^&\s\"']+)"),
     r"\1=" + MASK),
    # <SessionId>...</SessionId> in outbound messages
    (re.compile(r"(?i)(<(?:\w+:)?SessionId[^>]*>)[^<]+(</)"), r"\1" + MASK + r"\2"),
    # user:password@ in URLs
    (re.compile(r"(?<=://)([^:/@\s]+):([^@/\s]+)@"), r"\1:" + MASK + "@"),
    # personal fields inside XML (a stored outbound message): <sf:Email>a@b.c</sf:Email>
    (re.compile(r"(?i)(<(?:\w+:)?(?:Email|PersonEmail|Phone|MobilePhone|HomePhone|OtherPhone|"
                r"AssistantPhone|Fax|Birthdate)(?:\s[^>]*)?>)[^<]+(</)"),
     r"\1" + MASK + r"\2"),
)


#: Every pattern above needs one of these words (in lower case); most text (ids, log
#: messages) has none, and one search is much cheaper than running every pattern.
_CANDIDATE = re.compile(
    r"token|bearer|basic|password|secret|api_key|sig|sessionid|://|email|phone|fax|birthdate"
)


def redact_text(text: str) -> str:
    """Mask secrets that appear inside free text (messages, tracebacks, URLs)."""
    if _CANDIDATE.search(text.lower()) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


@lru_cache(maxsize=4096)
def is_personal_key(key: str) -> bool:
    return key.lower() in PERSONAL_KEYS


def redact(value: Any, *, personal: bool = True) -> Any:
    """A deep copy of ``value`` with secret (and by default personal) fields masked."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            name = str(key)
            if is_secret_key(name) or (personal and is_personal_key(name)):
                out[key] = MASK if item not in (None, "") else item
            elif isinstance(item, str):
                out[key] = redact_text(item)
            else:
                out[key] = redact(item, personal=personal)
        return out
    if isinstance(value, list | tuple):
        return type(value)(redact(item, personal=personal) for item in value)
    return value
