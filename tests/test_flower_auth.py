"""How the app decides, in the process Celery starts for ``flower``, whether Flower will ask
for credentials (``o2c_workers.flower_auth``); tests/deploy/test_flower_auth.py runs the
Procfile's flower line itself."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import click
import pytest
from tornado.options import options

from o2c_workers.flower_auth import (
    ALLOW_ANONYMOUS_VAR,
    REFUSAL,
    REFUSED_EXIT,
    allow_anonymous,
    check_flower_start,
    flower_argv,
    flower_enforces_auth,
)

FLOWER = ["celery", "-A", "o2c_workers", "flower", "--port=5555"]


@pytest.fixture(autouse=True)
def flower_options(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Flower keeps its options in tornado's global ones: each test starts from none."""
    import flower.command  # noqa: F401 - defines Flower's options

    for name in list(os.environ):
        if name.startswith("FLOWER_") or name == ALLOW_ANONYMOUS_VAR:
            monkeypatch.delenv(name)
    saved = {name: getattr(options, name) for name in ("basic_auth", "auth")}
    options.basic_auth, options.auth = [], ""
    yield
    for name, value in saved.items():
        setattr(options, name, value)


@pytest.mark.parametrize(("raw", "allowed"), [("", False), ("false", False),
                                              (" FALSE ", False), ("true", True)])
def test_allow_anonymous_is_true_or_false(raw: str, allowed: bool) -> None:
    assert allow_anonymous({ALLOW_ANONYMOUS_VAR: raw}) is allowed
    assert allow_anonymous({}) is False


def test_any_other_allow_anonymous_value_stops_the_start_naming_the_variable() -> None:
    with pytest.raises(SystemExit, match=f"{ALLOW_ANONYMOUS_VAR} must be true or false"):
        allow_anonymous({ALLOW_ANONYMOUS_VAR: "yes"})


def test_flowers_own_arguments_are_those_after_its_subcommand() -> None:
    assert flower_argv(FLOWER) == ["--port=5555"]
    assert flower_argv(["celery", "-A", "o2c_workers", "worker"]) == []


def test_basic_auth_on_the_command_line_or_in_the_environment_is_enforced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert flower_enforces_auth(["--port=5555"]) is False
    assert flower_enforces_auth(["--basic_auth=ops:pass-17"]) is True
    options.basic_auth = []
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:pass-17")
    assert flower_enforces_auth([]) is True


def in_celery(subcommand: str) -> click.Context:
    """The context Celery's command line is in while it runs ``subcommand``."""
    context = click.Context(click.Group("celery"))
    context.invoked_subcommand = subcommand
    return context


def test_flower_without_auth_exits_with_the_refusal(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", FLOWER)
    with in_celery("flower"), pytest.raises(SystemExit) as stopped:
        check_flower_start()
    assert stopped.value.code == REFUSED_EXIT
    assert REFUSAL in capsys.readouterr().err


def test_flower_with_auth_or_allowed_open_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [*FLOWER, "--basic_auth=ops:pass-17"])
    with in_celery("flower"):
        check_flower_start()
    options.basic_auth = []
    monkeypatch.setattr(sys, "argv", FLOWER)
    monkeypatch.setenv(ALLOW_ANONYMOUS_VAR, "true")
    with in_celery("flower"):
        check_flower_start()


def test_other_subcommands_are_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["celery", "-A", "o2c_workers", "worker"])
    with in_celery("worker"):
        check_flower_start()
    check_flower_start()  # no Celery command line at all (the receiver, the tests)
