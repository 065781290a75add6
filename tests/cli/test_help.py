"""``--help`` reads as prose at any terminal width: docstrings are re-wrapped, not broken
where their source lines end."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from o2c_workers.cli import cli

COMMANDS = [[], ["sandbox"], ["demo"], ["chaos"], ["status"], ["report"], ["resync"],
            ["reconcile"], ["dlq"], ["dlq", "list"], ["dlq", "requeue"], ["dlq", "stats"]]
WIDTH = 80


def description(output: str) -> list[list[str]]:
    """The paragraphs between the usage line and the first panel, as lists of lines."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Usage:")) + 1
    end = next(i for i, line in enumerate(lines) if line.lstrip().startswith("╭"))
    paragraphs: list[list[str]] = [[]]
    for line in lines[start:end]:
        if line.strip():
            paragraphs[-1].append(line.rstrip())
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "o2c")
def test_help_wraps_paragraphs_to_the_terminal(args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= WIDTH
    for paragraph in description(result.output):
        # Every line but a paragraph's last is filled: a short one would be a source break.
        short = [line for line in paragraph[:-1] if len(line) < WIDTH * 0.6]
        assert not short, "\n".join(paragraph)


def test_the_command_list_wraps_each_summary() -> None:
    result = CliRunner().invoke(cli, ["--help"], env={"COLUMNS": str(WIDTH)})
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    report = next(i for i, line in enumerate(rows) if line.startswith("│ report"))
    # Its summary takes three lines here; the middle one must be filled.
    middle = rows[report + 1].rstrip("│ ")
    assert len(middle) > WIDTH * 0.75, rows[report: report + 3]
