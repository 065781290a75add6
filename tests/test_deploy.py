"""Every shipped way to start the receiver uses the shipped gunicorn settings."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def procfile_web() -> list[str]:
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines()
                if line.startswith("web:"))
    return shlex.split(line.removeprefix("web:"))


def dockerfile_cmd() -> list[str]:
    text = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert match, "the Dockerfile has no CMD in exec form"
    return list(json.loads(match.group(1)))


def systemd_exec() -> list[str]:
    text = (ROOT / "deploy" / "systemd" / "o2c-web.service").read_text()
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


@pytest.mark.parametrize("command", [procfile_web, dockerfile_cmd, systemd_exec])
def test_the_receiver_starts_with_config_gunicorn(command):
    argv = command()
    assert Path(argv[0]).name == "gunicorn"
    assert argv[argv.index("-c") + 1] == "python:config.gunicorn"
    assert "o2c_workers.wsgi:create_app()" in argv
    # Settings that config/gunicorn.py owns: the worker class, and the access log format
    # that keeps the webhook token (in the query string) out of the logs.
    for owned in ("-k", "--worker-class", "--threads", "--access-logformat"):
        assert owned not in argv
