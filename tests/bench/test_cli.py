"""``make bench`` runs ``python -m tests.bench`` with no names: every benchmark."""

from __future__ import annotations

import importlib

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



def test_the_delivery_benchmark_is_registered_and_runs_short():
    assert BENCHMARKS["delivery"] == "tests.bench.delivery"
    assert parse(["delivery", "--quick"]) == (["delivery"], True)
    assert parse(["--quick", "ingest", "delivery"]) == (["ingest", "delivery"], True)
