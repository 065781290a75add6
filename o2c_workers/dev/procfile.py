"""Read the Procfile: the process types users run, each a shell command line.

Procfile runners (foreman, honcho, Heroku) run every line with ``sh -c``, so ``${VAR:-x}``
defaults are expanded by the shell from the process's environment; ``argv`` does the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: ``name: command``; names are letters, digits, ``_`` and ``-`` (foreman's rule).
_LINE = re.compile(r"^(?P<name>[A-Za-z0-9_-]+):\s*(?P<command>\S.*)$")
#: Where the project's own Procfile lives in a checkout (an editable install).
PROJECT_PROCFILE = Path(__file__).resolve().parents[2] / "Procfile"


@dataclass(frozen=True)
class ProcessType:
    """One line of the Procfile."""

    name: str
    command: str

    def argv(self) -> list[str]:
        """Run it as a Procfile runner does; ``exec`` keeps the pid the command's own."""
        return ["/bin/sh", "-c", f"exec {self.command}"]


def parse(text: str) -> dict[str, ProcessType]:
    """Process types by name, in file order; blank lines and ``#`` comments are skipped."""
    out: dict[str, ProcessType] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"Procfile line {number} is not `name: command`: {line!r}")
        if match["name"] in out:
            raise ValueError(f"Procfile line {number} repeats process type {match['name']!r}")
        out[match["name"]] = ProcessType(match["name"], match["command"].strip())
    return out


def load(path: Path = PROJECT_PROCFILE) -> dict[str, ProcessType]:
    """The process types of the Procfile at ``path``."""
    return parse(path.read_text(encoding="utf-8"))
