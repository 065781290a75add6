"""Each worker sizes its pool from its queue's variable, the fleet's, or its default."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from o2c_workers import sizing
from o2c_workers.dev import procfile
from o2c_workers.dev.fleet import Fleet
from o2c_workers.domains import DOMAINS
from tests.plugins.workers import worker_env

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("domain", DOMAINS)
def test_a_domain_worker_runs_its_default_unless_told(domain):
    assert sizing.size([domain], {}) == sizing.Sizing(sizing.DEFAULTS[domain],
                                                      f"the {domain} default")
    assert sizing.size([domain], {"WORKER_CONCURRENCY": "7"}).processes == 7
    own = {sizing.variable(domain): "3", "WORKER_CONCURRENCY": "7"}
    assert sizing.size([domain], own) == sizing.Sizing(3, sizing.variable(domain))


def test_one_queues_variable_sizes_only_that_queues_workers():
    env = {"PRICING_CONCURRENCY": "9"}
    assert sizing.size(["pricing"], env).processes == 9
    assert sizing.size(["order"], env).processes == sizing.DEFAULTS["order"]
    # The customer worker also takes the sweep's queue; its own variable still counts.
    assert sizing.size(["customer", "sweep"], {"CUSTOMER_CONCURRENCY": "4"}).processes == 4


def test_a_worker_on_several_domains_takes_the_fleets_figure_or_celerys_default():
    queues = ["customer", "pricing", "order"]
    assert sizing.size(queues, {"PRICING_CONCURRENCY": "9"}).processes is None
    assert sizing.size(queues, {"WORKER_CONCURRENCY": "3"}).processes == 3


def test_the_defaults_keep_sixteen_processes_weighted_to_the_slow_step():
    assert sum(sizing.DEFAULTS.values()) == 16
    assert set(sizing.DEFAULTS) == set(DOMAINS)
    # The order step (two ERP round trips, then the write-back) is the slow one.
    assert sizing.DEFAULTS["order"] > 2 * max(sizing.DEFAULTS[d] for d in DOMAINS
                                              if d != "order")
    # Every queue keeps a process working while another is killed or restarted.
    assert min(sizing.DEFAULTS.values()) >= 2


@pytest.mark.parametrize("value", ["0", "-2", "four", "2.5", "999", " "])
def test_a_value_that_is_no_process_count_is_refused_naming_the_variable(value):
    if not value.strip():
        assert sizing.size(["pricing"], {"PRICING_CONCURRENCY": value}).processes == \
            sizing.DEFAULTS["pricing"]
        return
    with pytest.raises(sizing.SizingRefused, match=r"PRICING_CONCURRENCY='.*'"):
        sizing.size(["pricing"], {"PRICING_CONCURRENCY": value})


def test_queue_names_read_the_option_as_celery_hands_it_over():
    assert sizing.queue_names("customer, sweep") == ["customer", "sweep"]
    assert sizing.queue_names(["pricing"]) == ["pricing"]
    assert sizing.queue_names(None) == []


def pool_size(worker, *, expected: int, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(worker.children()) >= expected and "ready." in worker.log_text():
            return len(worker.children())
        if not worker.alive():
            break
        time.sleep(0.2)
    return len(worker.children())


def start_procfile_worker(name: str, redis_url: str, env: dict[str, str]):
    scrub = {k: v for k, v in worker_env(redis_url).items()
             if not k.endswith("_CONCURRENCY")}
    scrub["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{scrub.get('PATH', '')}"
    fleet = Fleet({**scrub, **env}, log_dir=Path(tempfile.mkdtemp(prefix="o2c-sizing-")))
    return fleet, fleet.start_process_type(procfile.load(ROOT / "Procfile")[name], cwd=ROOT)


@pytest.mark.slow
def test_the_procfiles_pricing_worker_runs_its_queues_figure(redis_url):
    fleet, worker = start_procfile_worker("pricing", redis_url, {"PRICING_CONCURRENCY": "3",
                                                                  "WORKER_CONCURRENCY": "1"})
    try:
        assert pool_size(worker, expected=3) == 3, worker.log_tail()
        assert "worker processes: 3 (PRICING_CONCURRENCY)" in worker.log_text()
    finally:
        fleet.stop()


@pytest.mark.slow
def test_the_procfiles_order_worker_runs_its_default(redis_url):
    fleet, worker = start_procfile_worker("order", redis_url, {})
    try:
        expected = sizing.DEFAULTS["order"]
        assert pool_size(worker, expected=expected) == expected, worker.log_tail()
    finally:
        fleet.stop()


@pytest.mark.slow
def test_a_bad_figure_stops_the_worker_at_start_saying_which(redis_url):
    fleet, worker = start_procfile_worker("invoice", redis_url,
                                          {"INVOICE_CONCURRENCY": "lots"})
    try:
        assert worker.process.wait(timeout=60) == sizing.REFUSED_EXIT
        assert "INVOICE_CONCURRENCY='lots'" in worker.log_text()
        assert not worker.children()
    finally:
        fleet.stop()
    assert os.environ.get("INVOICE_CONCURRENCY") is None
