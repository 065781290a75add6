"""The ERP change feed with a real worker, the sandbox's simulators over HTTP and the test
Redis: with the ERP's webhooks lost, invoices and payments still reach Salesforce, once
each; a version a webhook delivered is not taken in again (nor the other way round); the
watermark moves durably; an ERP that refuses leaves it where it was and says so."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from rich.console import Console
from typer.testing import CliRunner

from config import Settings
from o2c_workers import app as celery_app
from o2c_workers import timeline
from o2c_workers.celery_app import ERP_FEED_ENTRY, ERP_FEED_TASK, beat_config
from o2c_workers.cli import cli
from o2c_workers.cli.report_cmd import report_table
from o2c_workers.dev import procfile
from o2c_workers.dev.fleet import Fleet
from o2c_workers.dev.procfile import ProcessType
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.enqueue import MessageFactory
from o2c_workers.erp import build_adapter
from o2c_workers.erp.changes import WATCHED
from o2c_workers.errors import O2CError
from o2c_workers.receiver.app import Receiver
from o2c_workers.report import build_report
from o2c_workers.sweeps import state
from o2c_workers.sweeps.erp_feed import FEED, ErpFeed
from o2c_workers.sweeps.state import SweepBusy
from o2c_workers.writeback import Outbox
from tests.helpers import call_wsgi
from tests.observability.conftest import samples
from tests.plugins.inprocess import FleetInProcess, fleet_in_process  # noqa: F401
from tests.plugins.workers import LOG_DIR, wait_for, worker_env

#: Every invoice paid in full, so each opportunity ends Paid.
PAID = {"unpaid_ratio": 0, "partial_payment_ratio": 0}
WON = 3


@pytest.fixture
def feed_of(redis_client: Any) -> Any:
    """``feed_of(fleet)``: the change feed of that fleet's ERP, as the beat's task builds
    it (the fleet's settings, its adapter); the adapters are closed after the test."""
    adapters: list[Any] = []

    def make(fleet: FleetInProcess, settings: Settings | None = None) -> ErpFeed:
        settings = settings or fleet.settings
        adapter = build_adapter(settings, redis_client)
        adapters.append(adapter)
        return ErpFeed(settings, redis_client, adapter, MessageFactory(celery_app))

    yield make
    for adapter in adapters:
        adapter.close()


def won_and_settled(fleet: FleetInProcess, count: int = WON) -> list[str]:
    """Win ``count`` opportunities; wait until each is booked, invoiced and paid in the ERP
    and nothing is left queued."""
    opportunities = [fleet.ok_opportunity(n) for n in range(count)]
    fleet.win(*opportunities)
    wait_for(lambda: len(fleet.documents("Payment Entry")) == count, timeout_s=60,
             what="every invoice paid in the ERP")
    wait_for(lambda: all(fleet.sf_record("Opportunity", o).get("ERP_Order_Number__c")
                         for o in opportunities), timeout_s=30, what="every order written back")
    fleet_idle(fleet)
    return opportunities


def fleet_idle(fleet: FleetInProcess) -> None:
    from o2c_workers.celery_app import DOMAINS
    from o2c_workers.delivery.census import census

    wait_for(lambda: census(fleet.redis, "o2c", DOMAINS).total == 0, timeout_s=60,
             what="every queued task run")
    # Their status write-backs leave the outbox about O2C_SF_FLUSH_S after they are accepted.
    outbox = Outbox(fleet.redis, prefix="o2c", flush_s=fleet.settings.sf_flush_s)
    wait_for(lambda: outbox.waiting() == 0, timeout_s=30, what="the outbox sent")


def events_of(fleet: FleetInProcess, trace_key: str) -> Counter[str]:
    return Counter(e["event"] for e in timeline.read(fleet.redis, "o2c", trace_key))


def test_with_the_erp_webhooks_at_a_dead_port_the_feed_brings_every_invoice_and_payment_once(
        fleet_in_process: Any, feed_of: Any) -> None:  # noqa: F811
    dead = f"http://127.0.0.1:{free_port()}/erp/events"
    fleet = fleet_in_process(webhooks=False, erp={
        **PAID, "webhook_url": dead, "webhook_retry_base_s": 0.05, "webhook_retry_cap_s": 0.1,
        "webhook_max_attempts": 3})
    opportunities = won_and_settled(fleet)
    wait_for(lambda: fleet.sandbox.erp.simulator.webhooks.snapshot()["pending"] == 0,
             timeout_s=30, what="the ERP to give its webhooks up")
    hooks = fleet.sandbox.erp.simulator.webhooks.snapshot()
    assert hooks["events"] > 0 and hooks["delivered"] == 0 and hooks["given_up"] == hooks[
        "events"]
    assert not any(fleet.sf_record("Opportunity", o).get("Invoice_Status__c")
                   for o in opportunities), "nothing reached Salesforce without the feed"

    feed = feed_of(fleet)
    result = feed.run()
    invoices, payments = fleet.documents("Sales Invoice"), fleet.documents("Payment Entry")
    orders = [o for o in fleet.documents("Sales Order") if o["modified"] != o["creation"]]
    assert result.counts == {"started": len(invoices) + len(payments) + len(orders)}
    assert result.api_calls == len(WATCHED), "one ERP call per DocType, each one page"
    fleet_idle(fleet)
    for opportunity in opportunities:
        record = fleet.sf_record("Opportunity", opportunity)
        assert (record["Invoice_Status__c"], record["Payment_Status__c"]) == ("Paid", "Paid")
        assert record["ERP_Order_Status__c"] == "Completed"
        events = events_of(fleet, opportunity)
        # Each task ran once: one invoice sync, one payment, one order status.
        assert (events["invoiced"], events["paid"], events["order_status"]) == (1, 1, 1)
    assert fleet.dead_letters.count() == 0

    # The next poll reads the same documents again (the overlap) and starts nothing.
    again = feed.run()
    assert again.counts == {"done": result.seen} and again.started == 0
    fleet_idle(fleet)
    assert all(events_of(fleet, o)["invoiced"] == 1 for o in opportunities)


def test_a_delivered_webhook_and_a_poll_of_the_same_version_run_one_task(
        fleet_in_process: Any, feed_of: Any) -> None:  # noqa: F811
    fleet = fleet_in_process(webhooks=False, erp=PAID)
    opportunities = won_and_settled(fleet, 2)
    payments = fleet.documents("Payment Entry")
    invoices = fleet.documents("Sales Invoice")
    # The webhooks of the payments arrive, their modified written another way (a "T",
    # as a webhook template may render it): the same version.
    for payment in payments:
        late = {**payment, "modified": payment["modified"].replace(" ", "T")}
        assert fleet.post_erp_event("on_submit", late)["status"] == "enqueued"
    fleet_idle(fleet)
    result = feed_of(fleet).run()
    found = {f.name: f.outcome for f in result.found}
    assert {found[f"Payment Entry {p['name']}"] for p in payments} == {"done"}
    assert {found[f"Sales Invoice {i['name']}"] for i in invoices} == {"started"}
    fleet_idle(fleet)
    assert all(events_of(fleet, o)["paid"] == 1 for o in opportunities)

    # The other way round: the feed took the invoices in; their webhooks come late.
    for invoice in invoices:
        assert fleet.post_erp_event("on_update_after_submit", invoice)["status"] == "duplicate"
    fleet_idle(fleet)
    assert all(events_of(fleet, o)["invoiced"] == 1 for o in opportunities)
    # A later version of a document is a new one, for webhooks as for the feed.
    order = next(o for o in fleet.documents("Sales Order"))
    newer = {**order, "modified": "2999-01-01 00:00:00.000000"}
    assert fleet.post_erp_event("on_update_after_submit", newer)["status"] == "enqueued"


def test_the_watermark_moves_durably_and_shows_in_the_report_and_metrics(
        fleet_in_process: Any, feed_of: Any) -> None:  # noqa: F811
    fleet = fleet_in_process(webhooks=False, erp=PAID)
    won_and_settled(fleet, 1)
    # A dry run lists what it would start, and starts nothing, moves nothing.
    dry = feed_of(fleet).run(dry_run=True)
    assert dry.counts == {"would_start": dry.seen} and dry.seen >= 3
    assert state.watermark(fleet.redis, "o2c", FEED) is None
    assert FEED not in state.read_status(fleet.redis, "o2c")
    first = feed_of(fleet).run()
    assert first.counts == {"started": dry.seen}
    mark = state.watermark(fleet.redis, "o2c", FEED)
    assert mark is not None and mark == first.watermark == pytest.approx(first.started_at)
    # A new feed (another worker, a restart) starts from the watermark less the overlap.
    later = feed_of(fleet).run()
    assert later.since == pytest.approx(mark - fleet.settings.erp_feed_overlap_s)
    assert state.watermark(fleet.redis, "o2c", FEED) == pytest.approx(later.started_at)
    assert later.started == 0

    report = build_report(fleet.redis, "o2c")
    figures = report.sweeps[FEED]
    assert (figures["seen"], figures["started"], figures["api_calls"]) == (later.seen, 0,
                                                                           len(WATCHED))
    assert figures["watermark_age_s"] < 60 and figures["runs"] == 2
    console = Console(width=200, record=True)
    console.print(report_table(report))
    assert f"sweep {FEED}: last success" in console.export_text()
    receiver = Receiver(fleet.settings.model_copy(update={"webhook_token": SecretStr("t")}),
                        redis_client=fleet.redis, celery_app=celery_app)
    status, _, body = call_wsgi(receiver, "GET", "/metrics")
    values = samples(body.decode())
    label = (("sweep", FEED),)
    assert status == 200 and values[("o2c_sweep_api_calls", label)] == len(WATCHED)
    assert 0 <= values[("o2c_sweep_watermark_age_seconds", label)] < 60
    assert values[("o2c_sweep_failing", label)] == 0.0


def test_the_feed_with_the_erp_down_records_a_failure_and_does_not_advance(
        fleet_in_process: Any, feed_of: Any) -> None:  # noqa: F811
    fleet = fleet_in_process(webhooks=False, erp=PAID)
    won_and_settled(fleet, 1)
    feed = feed_of(fleet)
    feed.run()
    mark = state.watermark(fleet.redis, "o2c", FEED)
    fleet.sandbox.erp.simulator.gate.update({"error_rate": 1.0, "error_status": 503})
    with pytest.raises(O2CError):
        feed.run()
    assert state.watermark(fleet.redis, "o2c", FEED) == mark
    failing = state.read_status(fleet.redis, "o2c")[FEED]
    assert failing.failed_at is not None and failing.failures == 1 and failing.runs == 1
    assert failing.error and "503" in failing.error
    fleet.sandbox.erp.simulator.gate.update({"error_rate": 0.0})
    time.sleep(0.01)
    back = feed.run()
    assert state.watermark(fleet.redis, "o2c", FEED) == pytest.approx(back.started_at)
    assert state.read_status(fleet.redis, "o2c")[FEED].failed_at is None


def test_one_poll_at_a_time_and_a_beat_entry_of_its_own(
        fleet_in_process: Any, feed_of: Any) -> None:  # noqa: F811
    fleet = fleet_in_process(webhooks=False)
    feed = feed_of(fleet)
    with state.Lease(fleet.redis, "o2c", ttl_s=60, feed=FEED):
        with pytest.raises(SweepBusy, match="another change feed is running"):
            feed.run()
        # The Salesforce sweeps' lease is another one: the feed never waits for them.
    with state.Lease(fleet.redis, "o2c", ttl_s=60):
        assert feed.run().dry_run is False
    entry = beat_config(fleet.settings)["beat_schedule"][ERP_FEED_ENTRY]
    assert entry["task"] == ERP_FEED_TASK and entry["schedule"] == 300.0
    assert entry["options"]["queue"] == "sweep"


@pytest.mark.slow
def test_the_beat_process_polls_the_erp_on_its_own_interval(sandbox: Any, redis_url: str,
                                                            redis_client: Any) -> None:
    interval_s = 1  # the subject of this test; the shipped default is 300
    env = worker_env(redis_url, **sandbox.env(), O2C_ERP_FEED_INTERVAL_S=str(interval_s),
                     PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    fleet = Fleet(env, log_dir=LOG_DIR / f"erp-feed-beat-{time.monotonic_ns()}")
    try:
        worker = fleet.start_worker("sweep", concurrency=1, name="feeder")
        worker.wait_ready()
        beat = procfile.load()["beat"]
        fleet.start_process_type(ProcessType("beat", beat.command),
                                 cwd=procfile.PROJECT_PROCFILE.parent)

        def runs() -> int:
            status = state.read_status(redis_client, "o2c").get(FEED)
            return status.runs if status else 0

        wait_for(lambda: runs() >= 3, timeout_s=45, what="the beat to poll the ERP thrice")
        status = state.read_status(redis_client, "o2c")[FEED]
        assert status.failures == 0 and status.api_calls == len(WATCHED)
        # The Salesforce sweep keeps its own five minutes: not sent again meanwhile.
        assert "opportunities" not in state.read_status(redis_client, "o2c") or \
            state.read_status(redis_client, "o2c")["opportunities"].runs <= 1
        assert redis_client.exists(f"o2c:beat:{ERP_FEED_ENTRY}") == 1
    finally:
        fleet.stop()


def test_resync_polls_the_erp_feed_from_its_since(fleet_in_process: Any) -> None:  # noqa: F811
    dead = f"http://127.0.0.1:{free_port()}/erp/events"
    fleet = fleet_in_process(webhooks=False, erp={
        **PAID, "webhook_url": dead, "webhook_retry_base_s": 0.05, "webhook_retry_cap_s": 0.1,
        "webhook_max_attempts": 3})
    opportunities = won_and_settled(fleet, 2)
    runner = CliRunner()

    def resync(*args: str) -> Any:
        result = runner.invoke(cli, ["resync", "--since", "1h", "--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert resync("--no-erp-feed")["erp_feed"] is None
    dry = resync("--dry-run")["erp_feed"]
    assert dry["outcomes"].keys() == {"would_start"} and dry["dry_run"]
    assert {r["outcome"] for r in dry["records"]} == {"would_start"}
    assert state.watermark(fleet.redis, "o2c", FEED) is None, "a dry run moves nothing"
    assert not any(fleet.sf_record("Opportunity", o).get("Invoice_Status__c")
                   for o in opportunities)

    fed = resync()["erp_feed"]
    assert fed["started"] == sum(dry["outcomes"].values())
    assert fed["api_calls"] == len(WATCHED)
    assert state.watermark(fleet.redis, "o2c", FEED) is not None
    fleet_idle(fleet)
    for opportunity in opportunities:
        record = fleet.sf_record("Opportunity", opportunity)
        assert (record["Invoice_Status__c"], record["Payment_Status__c"]) == ("Paid", "Paid")
    table = runner.invoke(cli, ["resync", "--since", "1h"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "erp_feed" in table.stdout and "ERP call(s)" in table.stdout
