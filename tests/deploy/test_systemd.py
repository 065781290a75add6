"""The systemd units in deploy/systemd/: they verify, are hardened, stop the workers warmly
with time above the hard time limit, and start exactly the Procfile's processes.

``systemd-analyze verify`` needs each ExecStart binary to exist, so it runs on copies of the
units whose ``/opt/o2c-workers/.venv/bin`` is rewritten to a temporary directory holding
stand-in executables of the same names; everything else in the files is checked as shipped.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis

from o2c_workers import app as celery_app
from o2c_workers.dev import procfile as procfile_types
from tests.delivery.test_transport import enqueue, held, runs
from tests.plugins.workers import ROOT, start_worker, wait_for

UNITS_DIR = ROOT / "deploy" / "systemd"
UNITS = ["o2c-web.service", "o2c-worker@.service", "o2c-beat.service", "o2c-flower.service"]
INSTALL_BIN = "/opt/o2c-workers/.venv/bin"
#: Each Procfile process and the unit (instance) that runs it.
PROCFILE_UNITS = {
    "web": "o2c-web.service",
    "customer": "o2c-worker@customer.service",
    "pricing": "o2c-worker@pricing.service",
    "order": "o2c-worker@order.service",
    "invoice": "o2c-worker@invoice.service",
    "payment": "o2c-worker@payment.service",
    "beat": "o2c-beat.service",
    "flower": "o2c-flower.service",
}
ANALYZE = shutil.which("systemd-analyze")
#: systemd-analyze runs as a subprocess (quick: well under a second each), hence ``slow``.
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def procfile() -> dict[str, str]:
    return {name: process.command
            for name, process in procfile_types.load(ROOT / "Procfile").items()}


def _settings(path: Path) -> list[tuple[str, str]]:
    """The (key, value) lines of a unit file or drop-in, in order (no continuation lines)."""
    pairs = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def unit_settings(unit: str) -> list[tuple[str, str]]:
    """A unit's settings with its drop-ins (``name.service.d/*.conf``) applied after it."""
    template = re.sub(r"@[^.]+\.service$", "@.service", unit)
    pairs = _settings(UNITS_DIR / template)
    for dropin in sorted((UNITS_DIR / f"{unit}.d").glob("*.conf")):
        pairs += _settings(dropin)
    return pairs


def last(unit: str, key: str) -> str:
    values = [v for k, v in unit_settings(unit) if k == key]
    assert values, f"{unit} has no {key}="
    return values[-1]


def _specifiers(text: str, instance: str) -> str:
    return re.sub(r"%(.)", lambda m: {"%": "%", "i": instance, "I": instance}[m.group(1)], text)


def unit_command(unit: str, env: dict[str, str]) -> list[str]:
    """The argv systemd would run: specifiers, then Environment= (overridden by ``env``, as
    the EnvironmentFile overrides Environment=), then ``${VAR}`` substituted."""
    instance = unit.partition("@")[2].removesuffix(".service")
    environ: dict[str, str] = {}
    for key, value in unit_settings(unit):
        if key == "Environment":
            for item in shlex.split(_specifiers(value, instance)):
                name, _, val = item.partition("=")
                environ[name] = val
    environ.update(env)
    argv = shlex.split(_specifiers(last(unit, "ExecStart"), instance))
    assert argv[0].startswith(INSTALL_BIN + "/"), argv[0]
    argv[0] = Path(argv[0]).name
    return [re.sub(r"\$\{(\w+)\}", lambda m: environ[m.group(1)], arg) for arg in argv]


def procfile_command(name: str, env: dict[str, str]) -> list[str]:
    """The Procfile's argv with ``${VAR:-default}`` resolved from ``env`` as a shell would."""
    def resolve(match: re.Match[str]) -> str:
        return env.get(match.group(1)) or match.group(2)
    return shlex.split(re.sub(r"\$\{(\w+):-([^}]*)\}", resolve, procfile()[name]))


def test_every_procfile_process_has_a_unit():
    assert set(procfile()) == set(PROCFILE_UNITS)


@pytest.mark.parametrize("env", [{}, {"PORT": "9000", "WEB_CONCURRENCY": "5",
                                      "FLOWER_PORT": "5600",
                                      "FLOWER_DB": "/srv/flower.db"}],
                         ids=["defaults", "overridden"])
@pytest.mark.parametrize("process", sorted(PROCFILE_UNITS))
def test_each_unit_runs_the_procfile_command(process, env):
    """Defaults and overrides alike: the unit's defaults are the Procfile's, and the
    environment file's variables take effect where the Procfile's do."""
    expected = procfile_command(process, env)
    if process == "flower" and "FLOWER_DB" not in env:
        # The Procfile's relative default lands in the unit's StateDirectory.
        expected = [a.replace("--db=flower.db", "--db=/var/lib/o2c-workers/flower.db")
                    for a in expected]
        assert last(PROCFILE_UNITS[process], "StateDirectory") == "o2c-workers"
    assert unit_command(PROCFILE_UNITS[process], env) == expected


def hard_time_limit() -> float:
    return float(celery_app.conf.task_time_limit)


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_stops_warmly_with_time_above_the_hard_limit(unit):
    settings = dict(unit_settings(unit))
    assert settings["KillMode"] == "mixed"  # SIGTERM to the main process only
    assert settings["KillSignal"] == "SIGTERM"
    assert hard_time_limit() >= 300
    assert float(settings["TimeoutStopSec"]) > hard_time_limit()
    assert settings["Restart"] == "always"
    assert int(settings["StartLimitBurst"]) > 0 and int(settings["StartLimitIntervalSec"]) > 0
    assert "network-online.target" in settings["Wants"].split()
    assert "network-online.target" in settings["After"].split()
    assert settings["StateDirectory"] == "o2c-workers"


@pytest.mark.parametrize("unit", ["o2c-web.service", "o2c-worker@order.service",
                                  "o2c-beat.service"])
def test_units_share_one_metrics_directory_kept_across_restarts(unit):
    environ = dict(item.split("=", 1) for k, v in unit_settings(unit) if k == "Environment"
                   for item in shlex.split(v))
    runtime = last(unit, "RuntimeDirectory")
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == f"/run/{runtime}"
    assert last(unit, "RuntimeDirectoryPreserve") == "yes"  # another unit may be writing
    if "worker" in unit:
        assert int(environ["O2C_METRICS_PORT"]) > 0


@pytest.fixture(scope="module")
def rewritten_units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of the units (and drop-ins) whose install path holds stand-in executables."""
    root = tmp_path_factory.mktemp("systemd")
    bindir = root / "bin"
    bindir.mkdir()
    for name in ("celery", "gunicorn"):
        (bindir / name).write_text("#!/bin/sh\nexit 0\n")
        (bindir / name).chmod(0o755)
    units = root / "units"
    shutil.copytree(UNITS_DIR, units)
    for path in units.rglob("*"):
        if path.is_file():
            path.write_text(path.read_text().replace(INSTALL_BIN, str(bindir)))
    return units


@pytest.mark.slow
@needs_analyze
@pytest.mark.parametrize("unit", list(dict.fromkeys([*UNITS, *PROCFILE_UNITS.values()])))
def test_each_unit_verifies(unit, rewritten_units):
    assert ANALYZE is not None
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{rewritten_units}:"}
    target = str(rewritten_units / unit) if unit.endswith("@.service") else unit
    done = subprocess.run([ANALYZE, "verify", "--man=no", target], cwd=rewritten_units,
                          env=env, capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys, only warning: a clean unit prints nothing.
    assert done.returncode == 0 and done.stderr.strip() == "" and done.stdout.strip() == "", \
        done.stderr + done.stdout


@pytest.mark.slow
@needs_analyze
def test_verify_check_catches_a_bad_drop_in(rewritten_units, tmp_path):
    """The check above would fail on a unit systemd warns about (the check can fail)."""
    units = tmp_path / "units"
    shutil.copytree(rewritten_units, units)
    with (units / "o2c-worker@customer.service.d" / "procfile.conf").open("a") as f:
        f.write("KillModee=mixed\n")
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"}
    done = subprocess.run([ANALYZE, "verify", "--man=no", "o2c-worker@customer.service"],
                          cwd=units, env=env, capture_output=True, text=True, timeout=60)
    assert "KillModee" in done.stderr + done.stdout


EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) (\w+)")


@pytest.mark.slow
@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_is_rated_ok_by_systemd_analyze_security(unit):
    assert ANALYZE is not None
    done = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager",
                           str(UNITS_DIR / unit)], capture_output=True, text=True, timeout=60)
    match = EXPOSURE.search(done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= 4.0 and match.group(2) == "OK", match.group(0)


@pytest.mark.slow
def test_sigterm_to_the_main_process_only_lets_the_running_task_finish(
        redis_url: str, redis_client: redis.Redis, workers: list) -> None:
    """What KillMode=mixed does on stop: SIGTERM to the worker's main process, none to its
    pool. The running step finishes, is acked, and nothing is left held or queued."""
    worker = start_worker(redis_url, queues="customer", include="tests.probe_tasks",
                          concurrency=1)
    workers.append(worker)
    trace_key = f"006{uuid.uuid4().hex[:12]}"
    enqueue(redis_client, trace_key, sleep={"customer": 3})
    wait_for(lambda: runs(redis_client, trace_key), what="the step to start")
    assert held(redis_client) == 1
    pool = worker.children()
    assert pool, "the prefork pool has no children"
    os.kill(worker.pid, signal.SIGTERM)  # the main process only
    started = time.monotonic()
    worker.process.wait(timeout=60)
    assert time.monotonic() - started > 1.0  # it waited for the step, not cut it short
    assert worker.process.returncode == 0
    assert len(runs(redis_client, trace_key)) == 1  # ran once, not returned and run again
    assert held(redis_client) == 0 and redis_client.llen("customer") == 0
    log = worker.log_text()
    assert "succeeded" in log and "WorkerLostError" not in log
