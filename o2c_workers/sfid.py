"""Salesforce record ids: the 15-character case-sensitive form and the 18-character one."""

from __future__ import annotations

import re

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")


def is_valid(value: str) -> bool:
    """A well-formed 15- or 18-character id whose suffix (if any) matches."""
    if not _ID.match(value):
        return False
    return len(value) == 15 or to18(value[:15]) == value


def _suffix(id15: str) -> str:
    out = []
    for chunk in range(3):
        bits = 0
        for pos, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << pos
        out.append(_ALPHABET[bits])
    return "".join(out)


def to18(value: str) -> str:
    """The 18-character form of a 15- or 18-character id."""
    if len(value) == 18:
        return value[:15] + _suffix(value[:15])
    if len(value) != 15:
        raise ValueError(f"not a Salesforce id: {value!r}")
    return value + _suffix(value)


def to15(value: str) -> str:
    if len(value) not in (15, 18):
        raise ValueError(f"not a Salesforce id: {value!r}")
    return value[:15]


def same(a: str, b: str) -> bool:
    """Whether two ids, in either form, name the same record."""
    try:
        return to15(a) == to15(b)
    except ValueError:
        return False
