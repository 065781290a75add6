"""Salesforce record ids: the 15-character case-sensitive form and the 18-character one."""

from __future__ import annotations

import re
import string
from functools import lru_cache

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
#: Upper-case letters to "1", everything else to "0": the bits of the checksum.
_BITS = str.maketrans({c: "1" if c in string.ascii_uppercase else "0"
                       for c in string.ascii_letters + string.digits})
_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")


def is_valid(value: str) -> bool:
    """A well-formed 15- or 18-character id whose suffix (if any) matches."""
    if not _ID.match(value):
        return False
    return len(value) == 15 or to18(value[:15]) == value


@lru_cache(maxsize=8192)
def _suffix(id15: str) -> str:
    # Each 5-character chunk gives one character: bit i is set when character i is
    # upper case, so the chunk's bits read right to left.
    bits = id15.translate(_BITS)
    return (_ALPHABET[int(bits[4::-1], 2)] + _ALPHABET[int(bits[9:4:-1], 2)]
            + _ALPHABET[int(bits[14:9:-1], 2)])


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
