"""Salesforce ids: the 18-character checksum suffix, validation and comparison."""

from __future__ import annotations

import pytest

from o2c_workers import sfid


@pytest.mark.parametrize(("id15", "id18"), [
    ("0015000000Gv7qJ", "0015000000Gv7qJAAR"),
    ("001000000000001", "001000000000001AAA"),
    ("AAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAA555"),
    ("00D5g000004ZcXQ", "00D5g000004ZcXQEA0"),
])
def test_the_18_character_form(id15, id18):
    assert sfid.to18(id15) == id18
    assert sfid.to18(id18) == id18
    assert sfid.is_valid(id15) and sfid.is_valid(id18)
    assert sfid.same(id15, id18)


@pytest.mark.parametrize("value", ["", "0015000000Gv7q", "0015000000Gv7qJAAA",
                                   "0015000000Gv7q-", "0015000000Gv7qJAARX"])
def test_malformed_or_wrong_checksum_is_invalid(value):
    assert not sfid.is_valid(value)


def test_other_lengths_are_refused():
    with pytest.raises(ValueError, match="not a Salesforce id"):
        sfid.to18("0015000000Gv7q")
