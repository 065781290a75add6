"""The Procfile as a Procfile runner reads it: the chaos run starts the fleet from it."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from o2c_workers.celery_app import DOMAINS
from o2c_workers.dev import procfile
from o2c_workers.domains import SWEEP_QUEUE


def queues(command: str) -> list[str]:
    argv = shlex.split(command)
    return argv[argv.index("-Q") + 1].split(",") if "-Q" in argv else []


def test_the_project_procfile_has_the_receiver_and_one_worker_per_queue() -> None:
    types = procfile.load()
    assert "gunicorn" in types["web"].command
    for domain in DOMAINS:
        assert queues(types[domain].command)[0] == domain
    consumed = [q for t in types.values() for q in queues(t.command)]
    assert sorted(consumed) == sorted([*DOMAINS, SWEEP_QUEUE]), "each queue consumed once"
    assert SWEEP_QUEUE in queues(types["customer"].command)


def test_the_procfile_runs_one_beat_with_the_schedule_of_the_app_config() -> None:
    types = procfile.load()
    argv = shlex.split(types["beat"].command)
    assert argv[:4] == ["celery", "-A", "o2c_workers", "beat"]
    # The scheduler (RedBeat, with its lease) and the schedule come from celery_app.py;
    # an embedded beat in a worker (-B) would run once per worker.
    for owned in ("-S", "--scheduler", "-s", "--schedule"):
        assert owned not in argv
    assert not [t.name for t in types.values() if "-B" in shlex.split(t.command)]


@pytest.mark.slow
def test_lines_run_through_the_shell_with_its_defaults_and_keep_their_pid() -> None:
    [ptype] = procfile.parse("probe: echo ${PORT:-8000} ${WORKERS:-2}\n").values()
    shown = subprocess.run(ptype.argv(), env={"WORKERS": "5"}, capture_output=True,
                           text=True, check=True).stdout
    assert shown == "8000 5\n"
    assert ptype.argv()[:2] == ["/bin/sh", "-c"] and ptype.argv()[2].startswith("exec ")


def test_comments_blank_lines_and_bad_lines() -> None:
    types = procfile.parse("# the fleet\n\nweb: run web\nworker-1:  run  worker \n")
    assert {n: t.command for n, t in types.items()} == {"web": "run web",
                                                        "worker-1": "run  worker"}
    with pytest.raises(ValueError, match="line 1"):
        procfile.parse("not a process line\n")
    with pytest.raises(ValueError, match="repeats"):
        procfile.parse("web: a\nweb: b\n")
