"""A periodic job's outcome (the sweep, the change feed): counted, and a failure left to the
next interval instead of being retried or dead-lettered."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from o2c_workers import metrics
from o2c_workers.errors import Transient
from o2c_workers.sweeps.state import SweepBusy
from tasks.sweep import _periodic


def count(outcome: str) -> float:
    value = metrics.SWEEP_RUNS.labels(outcome)._value.get()  # the counter's own reading
    return float(value)


def run(job: Any) -> dict[str, Any]:
    return _periodic("sweep", metrics.sweep_run, job)


def test_a_finished_job_answers_its_figures_and_counts_ok() -> None:
    before = count("ok")
    assert run(lambda: {"started": 3, "api_calls": 2}) == {"started": 3, "api_calls": 2}
    assert count("ok") == before + 1


def test_a_job_that_finds_the_lease_taken_is_skipped_and_counted_busy() -> None:
    def busy() -> dict[str, Any]:
        raise SweepBusy("another sweep holds the lease")

    before = count("busy")
    assert run(busy) == {"skipped": "busy"}
    assert count("busy") == before + 1


def test_a_failure_is_logged_and_left_to_the_next_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    def failing() -> dict[str, Any]:
        raise Transient("Salesforce answered 503", reason="unavailable")

    before = count("failed")
    with caplog.at_level(logging.ERROR, logger="o2c.sweep"):
        assert run(failing) == {"failed": "Transient"}
    assert count("failed") == before + 1
    [record] = [r for r in caplog.records if r.name == "o2c.sweep"]
    assert "the next one tries again" in record.getMessage()
    assert record.reason == "unavailable"  # type: ignore[attr-defined]


def test_a_defect_is_not_swallowed() -> None:
    def broken() -> dict[str, Any]:
        raise KeyError("watermark")

    with pytest.raises(KeyError):
        run(broken)
