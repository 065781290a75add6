"""``o2c demo``, the README's main job, run end to end as a user runs it (smaller)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_DB

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_demo_runs_end_to_end_and_checks_out(redis_server, redis_url, tmp_path):
    env = dict(os.environ, O2C_REDIS_URL=redis_server.url, COLUMNS="120")
    result = subprocess.run(
        [sys.executable, "-m", "o2c_workers.cli", "demo", "--opportunities", "12",
         "--accounts", "10", "--credit-hold", "1", "--missing-tax", "1", "--unknown-item", "1",
         "--redis-db", str(TEST_DB), "--run-dir", str(tmp_path), "--timeout", "120"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "✗" not in output, output[-3000:]
    assert "✓ expected 9" in output
    assert output.count("✓ designed 1") == 3
    assert "reconcile (Salesforce ↔ ERP)" in output
    assert "only the designed failures" in output
    assert "stopped cleanly" in output
