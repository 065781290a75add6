"""Every shipped way to start the receiver uses the shipped gunicorn settings, and every
deploy file that lists the Procfile's processes runs the beat and consumes the sweep queue."""

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


def _command_lists(path: Path) -> dict[str, list[str]]:
    """Every ``command: [...]`` of a YAML file (flow lists in JSON's quoting), by position."""
    text = path.read_text()
    found = re.finditer(r"command:\s*(\[.*?\])", text, re.DOTALL)
    return {f"{path.name}:{m.start()}": list(json.loads(m.group(1))) for m in found}


def compose_commands() -> dict[str, list[str]]:
    return _command_lists(ROOT / "deploy" / "compose.yaml")


def k8s_commands() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted((ROOT / "deploy" / "k8s" / "base").glob("*.yaml")):
        out.update(_command_lists(path))
    return out


def systemd_commands() -> dict[str, list[str]]:
    out = {}
    for path in sorted((ROOT / "deploy" / "systemd").glob("*.service")):
        line = next(line for line in path.read_text().splitlines()
                    if line.startswith("ExecStart="))
        out[path.stem] = shlex.split(line.removeprefix("ExecStart="))
    return out


def _queues(argv: list[str]) -> list[str]:
    return argv[argv.index("-Q") + 1].split(",") if "-Q" in argv else []


@pytest.mark.parametrize("commands", [compose_commands, k8s_commands])
def test_deploy_files_run_one_beat_and_consume_the_sweep_queue(commands):
    argvs = commands()
    beats = [argv for argv in argvs.values() if argv[:4] == ["celery", "-A", "o2c_workers",
                                                             "beat"]]
    assert len(beats) == 1, argvs
    assert "-S" not in beats[0] and "--scheduler" not in beats[0]
    assert "sweep" in [q for argv in argvs.values() for q in _queues(argv)]


def test_systemd_has_a_beat_unit_and_names_the_sweep_worker():
    argvs = systemd_commands()
    assert Path(argvs["o2c-beat"][0]).name == "celery" and argvs["o2c-beat"][3] == "beat"
    # The worker template takes its queue from the instance name; the customer instance's
    # drop-in adds the sweep's queue, as the Procfile's customer process does.
    assert _queues(argvs["o2c-worker@"]) == ["${O2C_WORKER_QUEUES}"]
    assert "Environment=O2C_WORKER_QUEUES=%i" in (
        ROOT / "deploy" / "systemd" / "o2c-worker@.service").read_text()
    dropin = ROOT / "deploy" / "systemd" / "o2c-worker@customer.service.d" / "procfile.conf"
    assert "Environment=O2C_WORKER_QUEUES=customer,sweep" in dropin.read_text()
    text = (ROOT / "deploy" / "systemd" / "o2c-beat.service").read_text()
    assert "o2c-worker@customer" in text
