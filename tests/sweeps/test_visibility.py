"""The last successful sweep in ``o2c report`` and at the receiver's ``/metrics``, and the
``o2c resync`` command."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from config import get_settings
from o2c_workers import app as celery_app
from o2c_workers.cli import cli
from o2c_workers.cli.report_cmd import report_table
from o2c_workers.receiver.app import Receiver
from o2c_workers.report import build_report
from o2c_workers.sweeps import state
from o2c_workers.sweeps.run import run_sweeps
from tests.helpers import call_wsgi
from tests.observability.conftest import samples
from tests.sweeps.conftest import Sweeping, sandbox_settings


def test_the_last_sweep_shows_in_the_report_and_in_metrics(sweeping: Sweeping) -> None:
    opps = sweeping.unwon(2)
    sweeping.win(opps)
    run_sweeps(sweeping.sweeper)
    report = build_report(sweeping.redis, "o2c")
    sweep = report.sweeps["opportunities"]
    assert (sweep["seen"], sweep["started"], sweep["api_calls"]) == (2, 2, 1)
    assert sweep["watermark_age_s"] < 60 and sweep["failed_at"] is None
    console = Console(width=200, record=True)
    console.print(report_table(report))
    text = console.export_text()
    assert "sweep opportunities: last success" in text and "2 seen, 2 started" in text
    assert "sweep opportunities: watermark" in text

    settings = sandbox_settings(sweeping.sandbox, sweeping.settings.redis_url,
                                webhook_token="t")
    receiver = Receiver(settings, redis_client=sweeping.redis, celery_app=celery_app)
    status, _, body = call_wsgi(receiver, "GET", "/metrics")
    assert status == 200
    values = samples(body.decode())
    opp = (("sweep", "opportunities"),)
    assert values[("o2c_sweep_records_started", opp)] == 2.0
    assert values[("o2c_sweep_api_calls", opp)] == 1.0
    assert 0 <= values[("o2c_sweep_watermark_age_seconds", opp)] < 60
    assert values[("o2c_sweep_failing", opp)] == 0.0
    assert abs(values[("o2c_sweep_last_success_timestamp_seconds", opp)] - time.time()) < 60


@pytest.fixture
def resync(sweeping: Sweeping) -> Any:
    runner = CliRunner()
    env = {**sweeping.sandbox.env(), "O2C_REDIS_URL": sweeping.settings.redis_url,
           "COLUMNS": "200"}

    def invoke(*args: str, **extra: str) -> Any:
        get_settings.cache_clear()  # each command reads the environment it is given
        try:
            return runner.invoke(cli, ["resync", *args], env={**env, **extra})
        finally:
            get_settings.cache_clear()

    return invoke


@pytest.mark.parametrize(("since", "said"), [
    ("yesterday", "is not a time"), ("2026-13-01", "is not a time"),
    ("2999-01-01T00:00Z", "in the future")])
def test_resync_refuses_a_bad_since(resync: Any, sweeping: Sweeping, since: str,
                                    said: str) -> None:
    result = resync("--since", since)
    assert result.exit_code == 2 and said in result.output
    assert sweeping.query_calls() == 0


def test_resync_dry_run_lists_then_resync_starts(resync: Any, sweeping: Sweeping) -> None:
    opps = sweeping.unwon(2)
    sweeping.win(opps)
    dry = resync("--since", "1h", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert all(o in dry.stdout for o in opps) and "would start" in dry.stdout
    assert sweeping.queued() == [] and state.watermark(sweeping.redis, "o2c",
                                                       "opportunities") is None
    done = resync("--since", "1h", "--json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    [opps_sweep] = [s for s in data["sweeps"] if s["sweep"] == "opportunities"]
    assert opps_sweep["started"] == 2 and opps_sweep["outcomes"] == {"started": 2}
    assert data["api_calls"] == sweeping.query_calls() - 2
    assert sorted(sweeping.queued()) == sorted(opps)
    again = resync("--since", "2026-01-01T00:00Z")
    assert again.exit_code == 0, again.output
    assert "running" in again.stdout and sorted(sweeping.queued()) == sorted(opps)


def test_resync_waits_for_a_running_sweep_and_reports_salesforce_refusing(
        resync: Any, sweeping: Sweeping) -> None:
    sweeping.win(sweeping.unwon(1))
    with state.Lease(sweeping.redis, "o2c", ttl_s=60):
        busy = resync("--since", "1h")
    assert busy.exit_code == 1 and "another sweep is running" in busy.output
    assert sweeping.queued() == []
    refused = resync("--since", "1h", O2C_SALESFORCE_CLIENT_SECRET="wrong")
    assert refused.exit_code == 2 and "the sweep stopped" in refused.output
    assert sweeping.queued() == []
    failing = state.read_status(sweeping.redis, "o2c")["opportunities"]
    assert failing.failed_at is not None and failing.finished_at is None


def test_no_sweep_figures_rather_than_false_ones_when_redis_is_down(
        sweeping: Sweeping) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    settings = sandbox_settings(sweeping.sandbox, sweeping.settings.redis_url,
                                webhook_token="t")
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                       retry=Retry(NoBackoff(), 0))
    receiver = Receiver(settings, redis_client=down, celery_app=celery_app)
    status, _, body = call_wsgi(receiver, "GET", "/metrics")
    assert status == 200
    assert not [name for name, _ in samples(body.decode()) if name.startswith("o2c_sweep_")
                and not name.startswith("o2c_sweep_runs")]
