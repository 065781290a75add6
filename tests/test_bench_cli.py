"""``make bench`` runs ``python -m tests.bench`` with no names: every benchmark."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.__main__ import BENCHMARKS, parse


def test_no_names_runs_every_benchmark():
    assert parse([]) == (list(BENCHMARKS), False)


def test_names_and_quick():
    assert parse(["limiter", "--quick"]) == (["limiter"], True)


def test_an_unknown_name_is_refused_clearly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(["nope"])
    assert exit_info.value.code == 2
    assert "no benchmark named nope" in capsys.readouterr().err


@pytest.mark.parametrize("module", sorted(BENCHMARKS.values()))
def test_every_benchmark_module_has_a_main(module):
    assert callable(importlib.import_module(module).main)


def test_an_unknown_ingest_baseline_is_refused_before_anything_starts():
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "tests.bench", "ingest"], cwd=root, capture_output=True,
        text=True, timeout=60,
        env=dict(os.environ, BENCH_INGEST_BASELINE="django", PYTHONPATH=str(root)))
    assert result.returncode == 1
    assert "BENCH_INGEST_BASELINE='django': choose from flask, no-group-commit" in result.stderr
    assert "Ingest" not in result.stdout
