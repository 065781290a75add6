"""Flower, as the Procfile's ``flower`` line starts it, refuses to serve without auth unless
O2C_FLOWER_ALLOW_ANONYMOUS=true; with basic auth (environment or Flower's --conf file) it
asks for credentials."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest
import requests

from o2c_workers.dev import procfile
from o2c_workers.dev.fleet import Fleet, ManagedProcess, wait_http
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.flower_auth import ALLOW_ANONYMOUS_VAR, REFUSED_EXIT
from tests.plugins.workers import ROOT

AUTH = ("ops", "flower-pass-17")


def start(redis_url: str, tmp_path: Path, port: int, env: dict[str, str]) -> ManagedProcess:
    """The Procfile's flower line, run as a Procfile runner does (``sh -c``)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("FLOWER_") and k != ALLOW_ANONYMOUS_VAR}
    fleet = Fleet(env={**base, "O2C_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT),
                       "PATH": f"{Path(sys.executable).parent}:{base.get('PATH', '')}",
                       "FLOWER_PORT": str(port), "FLOWER_DB": str(tmp_path / "flower.db")},
                  log_dir=tmp_path / "logs")
    return fleet.start_process_type(procfile.load()["flower"], cwd=tmp_path, env=env)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def refused(proc: ManagedProcess, port: int) -> str:
    """Its exit status is the refusal's, within seconds, and it never listened."""
    started = time.monotonic()
    try:
        code = proc.process.wait(timeout=20)
    finally:
        proc.stop()
    assert code == REFUSED_EXIT, proc.log_text()
    assert time.monotonic() - started < 20
    assert not listening(port)
    return proc.log_text()


@pytest.mark.slow
def test_flower_without_auth_exits_with_a_message_naming_the_variables(redis_url, tmp_path):
    port = free_port()
    log = refused(start(redis_url, tmp_path, port, {}), port)
    for name in ("FLOWER_BASIC_AUTH", "FLOWER_AUTH", "FLOWER_AUTH_PROVIDER",
                 "FLOWER_OAUTH2_KEY", ALLOW_ANONYMOUS_VAR):
        assert name in log
    assert "Visit me" not in log


@pytest.mark.slow
def test_a_bad_allow_anonymous_value_is_refused_and_named(redis_url, tmp_path):
    port = free_port()
    proc = start(redis_url, tmp_path, port, {ALLOW_ANONYMOUS_VAR: "yes please"})
    try:
        code = proc.process.wait(timeout=20)
    finally:
        proc.stop()
    assert code != 0
    assert f"{ALLOW_ANONYMOUS_VAR} must be true or false" in proc.log_text()
    assert not listening(port)


@pytest.mark.slow
def test_flower_allowed_anonymous_serves_its_ui_to_anyone(redis_url, tmp_path):
    port = free_port()
    proc = start(redis_url, tmp_path, port, {ALLOW_ANONYMOUS_VAR: "true"})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthcheck", proc)
        assert requests.get(f"http://127.0.0.1:{port}/tasks", timeout=10).status_code == 200
    finally:
        proc.stop()


@pytest.mark.slow
def test_flower_with_basic_auth_in_the_environment_asks_for_it(redis_url, tmp_path):
    port = free_port()
    proc = start(redis_url, tmp_path, port, {"FLOWER_BASIC_AUTH": ":".join(AUTH)})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthcheck", proc)
        url = f"http://127.0.0.1:{port}/tasks"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, auth=(AUTH[0], "wrong"), timeout=10).status_code == 401
        assert requests.get(url, auth=AUTH, timeout=10).status_code == 200
    finally:
        proc.stop()


@pytest.mark.slow
def test_flower_with_basic_auth_in_its_conf_file_starts_and_asks_for_it(redis_url, tmp_path):
    # Flower reads ./flowerconfig.py (its default --conf) from its working directory.
    (tmp_path / "flowerconfig.py").write_text(f"basic_auth = [{':'.join(AUTH)!r}]\n")
    port = free_port()
    proc = start(redis_url, tmp_path, port, {})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthcheck", proc)
        url = f"http://127.0.0.1:{port}/tasks"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, auth=AUTH, timeout=10).status_code == 200
    finally:
        proc.stop()
