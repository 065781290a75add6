"""``o2c chaos --smoke``, as ``make chaos`` runs it but smaller: the Procfile's fleet with
shipped defaults under every fault kind, judged from the simulators' records alone.

It starts a private Redis of its own (killed and restarted during the run), so it leaves the
tests' Redis database alone. It asserts the run's real verdicts, and every one must hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from o2c_workers.demo.chaos.faults import RECEIVER_TRIES

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.slow


@pytest.mark.timeout(260)
def test_no_order_lost_stalled_or_booked_twice_under_chaos(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("O2C_")}
    result = run_to_the_end(
        [sys.executable, "-m", "o2c_workers.cli", "chaos", "--smoke", "--json",
         "--run-dir", str(tmp_path)], env={**env, "COLUMNS": "160"}, timeout_s=185)
    assert result.stdout, result.stderr[-4000:]
    outcome = json.loads(result.stdout)
    failed = {v["name"]: v for v in outcome["verdicts"] if not v["ok"]}
    assert failed == {}, result.stderr[-4000:]
    assert result.returncode == 0
    verdicts = {v["name"]: v for v in outcome["verdicts"]}
    assert verdicts["duplicate orders"]["value"] == "0"
    assert verdicts["lost or stalled"]["value"] == "0"
    assert verdicts["designed failures dead-lettered with their category"]["value"] == "6 of 6"
    faults = {f["fault"]: f["count"] for f in outcome["faults"]}
    assert faults["Redis restarted from its AOF"] == 1
    # One receiver kill is scheduled; a kill that cut no delivery of Salesforce's is tried
    # again on the next, up to RECEIVER_TRIES kills in all (more on a loaded machine).
    assert 1 <= faults["receiver workers SIGKILLed"] <= RECEIVER_TRIES
    figures = outcome["figures"]
    assert figures["won"] == 50
    # Churn: 8 lost, re-opened, edited and won again, 1 of them invoiced before the loss;
    # each ends as it must, and the replay with the faults off books all but the designed.
    assert (figures["churned"], figures["churned_invoiced"]) == (8, 1)
    assert figures["churned_won_again"] == 8
    for name in ("churned, lost: order cancelled, or dead-lettered when invoiced",
                 "churned, edited and won again: order amended, or dead-lettered when "
                 "invoiced"):
        assert verdicts[name]["value"] == "8 of 8"
    assert figures["replay_requeued"] >= 6 + 1
    assert figures["replay_settled_s"] is not None


def run_to_the_end(argv: list[str], *, env: dict[str, str],
                   timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run the chaos command; past the timeout, SIGTERM it so that it stops the Redis,
    sandbox and fleet it started, rather than leaving them behind."""
    with subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.terminate()
            out, err = proc.communicate(timeout=60)
            pytest.fail(f"the chaos run took over {timeout_s:.0f} s:\n{err[-4000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)
