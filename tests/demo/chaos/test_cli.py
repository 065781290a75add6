"""``o2c chaos`` refuses a churn share outside [0, 1] before it starts anything."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from o2c_workers.cli import cli


def test_a_churn_share_outside_zero_to_one_is_refused_and_nothing_starts(tmp_path: Path) -> None:
    for share in ("1.5", "-0.1"):
        result = CliRunner().invoke(cli, ["chaos", "--smoke", "--churn-share", share,
                                          "--run-dir", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert "--churn-share" in result.output
        assert "between 0 and 1" in result.output
    assert list(tmp_path.iterdir()) == []
