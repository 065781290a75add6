"""Keep secrets and personal data out of logs, dead letters and Sentry events.

Two kinds of masking, for two kinds of readers:

- ``mask_fields``: by field name only, values otherwise exact. What a dead letter stores of
  the arguments its requeue replays: a name like "Basic Elements Inc" or an item code like
  "BASIC SUPPORT-12M" must come back as it was, so no text pattern ever runs over data.
- ``redact``: by field name, and secret-looking text inside values ("Bearer …", "token=…",
  e-mail addresses). What people see: Sentry, the dead-letter views, and logs (where
  e-mail-like text stays, because node names such as ``celery@host.example.com`` are
  written like addresses).
"""

from __future__ import annotations

import itertools
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
#: A field is personal when one of these words is in its name (``BillingStreet``,
#: ``MailingCity``, ``PersonEmail``, ``email_id``, ``MobilePhone``, ``mobile_no``,
#: ``address_line1``, ``pincode``).
PERSONAL_WORDS = frozenset({
    "email", "phone", "mobile", "fax", "street", "city", "address", "pincode", "postcode",
    "zip", "zipcode", "birthdate", "birthday",
})
#: ... or one of these pairs, written as one word or two (``FirstName``, ``last_name``,
#: ``BillingPostalCode``, ``contact_person``).
PERSONAL_PAIRS = frozenset({
    ("first", "name"), ("last", "name"), ("middle", "name"), ("full", "name"),
    ("postal", "code"), ("zip", "code"), ("birth", "date"), ("contact", "person"),
    ("contact", "display"), ("contact", "name"),
})
_JOINED_PAIRS = frozenset(a + b for a, b in PERSONAL_PAIRS)
#: Salesforce custom field suffixes, left out before a name is split into words.
_CUSTOM_SUFFIX = re.compile(r"__(c|pc|s)$", re.IGNORECASE)
#: camelCase, snake_case and digits as separate words: ``BillingPostalCode`` →
#: billing, postal, code; ``address_line1`` → address, line, 1.
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PATTERNS = (
    # Authorization: token key:secret / Bearer abc / Basic abc
    (re.compile(r"(?i)\b(token|bearer|basic)\s+[A-Za-z0-9._~+/=:-]{6,}"), r"\1 " + MASK),
    # token=..., password=..., client_secret=... in URLs and text
    (re.compile(r"(?i)\b((?:[a-z0-9]+_)*(?:token|password|secret|api_key|sig|signature))="
                r"([^&\s\"']+)"),
     r"\1=" + MASK),
    # <SessionId>...</SessionId> in outbound messages
    (re.compile(r"(?i)(<(?:\w+:)?SessionId[^>]*>)[^<]+(</)"), r"\1" + MASK + r"\2"),
    # user:password@ and :password@ (no user name) in URLs
    (re.compile(r"(?<=://)([^:/@\s]*):([^@/\s]+)@"), r"\1:" + MASK + "@"),
    # personal fields inside XML (a stored outbound message): <sf:Email>a@b.c</sf:Email>
    (re.compile(r"(?i)(<(?:\w+:)?(?:Email|PersonEmail|Phone|MobilePhone|HomePhone|OtherPhone|"
                r"AssistantPhone|Fax|Birthdate)(?:\s[^>]*)?>)[^<]+(</)"),
     r"\1" + MASK + r"\2"),
)


#: Every pattern above needs one of these (in lower case); most text (ids, log messages)
#: has none, and one search is much cheaper than running every pattern.
_CANDIDATE = re.compile(
    r"token|bearer|basic|password|secret|api_key|sig|sessionid|://|email|phone|fax|birthdate|@"
)


def redact_text(text: str, *, emails: bool = True) -> str:
    """Mask secrets (and e-mail addresses) inside free text (messages, tracebacks, URLs)."""
    if _CANDIDATE.search(text.lower()) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _EMAIL.sub(MASK, text) if emails and "@" in text else text


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


@lru_cache(maxsize=4096)
def is_personal_key(key: str) -> bool:
    """Whether a field of this name holds personal data (names, addresses, contacts)."""
    words = [w.lower() for w in _WORD.findall(_CUSTOM_SUFFIX.sub("", key))]
    if any(w in PERSONAL_WORDS or w in _JOINED_PAIRS for w in words):
        return True
    return any(pair in PERSONAL_PAIRS for pair in itertools.pairwise(words))


def is_masked_key(key: str) -> bool:
    """Secret or personal: a field whose value no reader of ours sees in clear."""
    return is_secret_key(key) or is_personal_key(key)


def _mask(item: Any) -> Any:
    return MASK if item not in (None, "") else item


def mask_fields(value: Any) -> Any:
    """A deep copy of ``value`` with secret and personal fields masked, by name only.

    Every other value is kept exactly, so that what a requeue replays is what was sent.
    """
    if isinstance(value, Mapping):
        return {key: _mask(item) if is_masked_key(str(key)) else mask_fields(item)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_fields(item) for item in value)
    return value


def redact(value: Any, *, emails: bool = True) -> Any:
    """A deep copy of ``value`` for people and logs: secret and personal fields masked by
    name, and secrets (and e-mail addresses) inside every text value (``redact_text``)."""
    if isinstance(value, str):
        return redact_text(value, emails=emails)
    if isinstance(value, Mapping):
        return {key: _mask(item) if is_masked_key(str(key)) else redact(item, emails=emails)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(item, emails=emails) for item in value)
    return value
