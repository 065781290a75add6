"""``o2c sandbox`` and ``start_sandbox``: both simulators up on one world, and down again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from o2c_workers.cli import cli

KNOBS = ("--seed", "--accounts", "--opportunities", "--erp-port", "--sf-port", "--outbound-url",
         "--erp-webhook-url", "--time-scale", "--duplicate-rate", "--reorder", "--batch-size",
         "--pretty", "--latency-ms", "--error-rate", "--rate-limit-per-s",
         "--concurrency-limit", "--timeout-after-commit-rate", "--maintenance-for-s",
         "--invoice-delay-s", "--payment-delay-s", "--daily-api-requests")


def test_help_documents_every_knob() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for knob in KNOBS:
        assert knob in result.output


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_runs_until_interrupted(tmp_path: Any, inherited: str) -> None:
    # "ignored": started by a parent that ignores SIGINT (a background job of a script, a
    # process in the middle of system()), which the child inherits; Ctrl-C still stops it.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from o2c_workers.cli import main; main()", "sandbox",
         "--erp-port", "0", "--sf-port", "0", "--accounts", "6", "--opportunities", "12",
         "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        preexec_fn=_ignore_sigint if inherited == "ignored" else None)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C stops" in line or not line:
                break
        output = "".join(lines)
        sf_url = re.search(r"O2C_SALESFORCE_INSTANCE_URL=(\S+)", output)
        erp_url = re.search(r"O2C_ERP_BASE_URL=(\S+)", output)
        assert sf_url and erp_url, output
        assert "sandbox-client-secret" in output and "sandbox-webhook-secret" in output
        http = requests.Session()
        http.trust_env = False
        http.verify = str(tmp_path / "ca.pem")
        stats = http.get(f"{sf_url[1]}/_sandbox/stats", timeout=5).json()
        assert stats["records"]["Opportunity"] == 12
        assert requests.get(f"{erp_url[1]}/api/method/ping", timeout=5).status_code < 500
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert proc.returncode == 0
    assert "sandbox stopped" in rest


def test_sandbox_fixture_runs_both_on_one_world(sandbox: Any) -> None:
    assert sandbox.sf_url.startswith("https://") and sandbox.ca_file
    http = sandbox.salesforce.session()
    world = http.get(f"{sandbox.sf_url}/_sandbox/world", timeout=5).json()
    assert world["expected_failures"] == sandbox.world.expected_failures
    env = sandbox.env()
    assert env["O2C_SALESFORCE_INSTANCE_URL"] == sandbox.sf_url
    assert env["O2C_ERP_BASE_URL"] == sandbox.erp_url
    answer = requests.get(f"{sandbox.erp_url}/api/resource/Item", timeout=5, headers={
        "Authorization": f"token {env['O2C_ERP_API_KEY']}:{env['O2C_ERP_API_SECRET']}"})
    assert answer.status_code == 200
    codes = {row["name"] for row in answer.json()["data"]}
    assert codes and codes <= {item.code for item in sandbox.world.erp.items}
