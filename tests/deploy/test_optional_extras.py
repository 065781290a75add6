"""flower and sentry-sdk are extras (the image installs them): an install without them
imports and runs with Sentry off, and a DSN set without the SDK fails with a clear error."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from config import Settings
from o2c_workers import sentry

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = ("sentry_sdk", "flower")


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported at a module's top level (not inside a function)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_no_module_imports_an_optional_extra_at_import_time():
    offenders = [str(path.relative_to(ROOT))
                 for package in ("o2c_workers", "tasks", "config")
                 for path in (ROOT / package).rglob("*.py")
                 if _top_level_imports(path) & set(OPTIONAL)]
    assert not offenders


def test_without_sentry_sdk_sentry_stays_off(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)  # as if not installed
    assert sentry.init(Settings(), component="worker") is False
    assert not sentry.enabled()
    sentry.tag_task(trace_key="006000000000001", task_name="o2c.order.submit_order")


def test_a_dsn_without_sentry_sdk_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)
    settings = Settings(sentry_dsn=SecretStr("https://key@sentry.example.com/1"))
    with pytest.raises(RuntimeError, match=r"o2c-workers\[sentry\]"):
        sentry.init(settings, component="worker")
    assert not sentry.enabled()
