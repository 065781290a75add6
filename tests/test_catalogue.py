"""The catalogue of dead-letter categories is the one source of their teams and hints."""

from __future__ import annotations

from pathlib import Path

from o2c_workers import catalogue
from o2c_workers.errors import AuthError, BusinessError, Transient
from o2c_workers.sentry import is_business

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_table_is_the_catalogue():
    text = README.read_text()
    for c in catalogue.CATEGORIES.values():
        row = f"| `{c.name}` | {c.team} | {c.action[0].upper() + c.action[1:]} |"
        assert row in text, f"README lacks the row of {c.name}"
    rows = [line for line in text.splitlines() if line.startswith("| `")
            and line.split("`")[1] in catalogue.CATEGORIES and " | " in line
            and line.count("|") == 4]
    assert len(rows) == len(catalogue.CATEGORIES)


def test_an_error_filed_under_a_category_carries_its_hint():
    error = BusinessError("on hold", category=catalogue.CREDIT_HOLD)
    assert error.remediation == catalogue.CATEGORIES["credit_hold"].remediation
    assert error.remediation.startswith("Finance: ")
    assert Transient("503").remediation == catalogue.remediation(catalogue.EXHAUSTED)
    assert AuthError("401").category == catalogue.AUTH
    assert BusinessError("x", category="credit_hold", remediation="own").remediation == "own"


def test_operational_categories_are_not_business_for_sentry():
    assert not is_business(catalogue.EXHAUSTED)
    assert is_business(catalogue.TAX_CONFIGURATION)
    assert is_business("something-new")


def test_an_unknown_category_points_to_the_traceback():
    assert "traceback" in catalogue.remediation("something-new")


def test_every_error_the_fleet_raises_on_purpose_has_one_root():
    from config import ConfigError
    from o2c_workers.dlq.errors import DlqError
    from o2c_workers.errors import O2CError
    from o2c_workers.receiver.http import HTTPError
    from o2c_workers.receiver.soap import BadMessage

    for cls in (ConfigError, DlqError, HTTPError, BadMessage):
        assert issubclass(cls, O2CError), cls
    assert HTTPError(404, "gone").status == 404
    from o2c_workers.dlq.errors import EntryNotFound
    assert EntryNotFound("no such entry").status == 404
