"""``o2c reconcile`` with the fleet in-process against the sandbox: a clean run agrees; an
amount changed in the ERP, a write-back field edited in Salesforce, an order keyed in the
ERP with another total and a won opportunity nobody booked are each named (exit 1);
``--fix --dry-run`` changes nothing; ``--fix`` repairs the safe ones and a second run agrees
on those while still listing the rest; ``GET /admin/reconcile`` answers the same report."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
import requests
from pydantic import SecretStr
from typer.testing import CliRunner

from config import get_settings, load_settings
from o2c_workers import app as celery_app
from o2c_workers import timeline
from o2c_workers.cli import cli
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.receiver.app import Receiver
from tests.helpers import call_wsgi
from tests.plugins.inprocess import FleetInProcess, fleet_in_process  # noqa: F401
from tests.plugins.sandbox import client_credentials
from tests.plugins.workers import wait_for

ADMIN = "reconcile-admin-token"
ROW_FIELDS = ("item_code", "qty", "rate", "price_list_rate", "discount_percentage")


def reconcile(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    """Run ``o2c reconcile --json ...``: exit status, the report, what went to stderr."""
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["reconcile", "--json", *args],
                                env={"COLUMNS": "200"})
    report = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, report, result.stderr


def kinds(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["kind"], f["opportunity_id"]) for f in report["findings"]}


def erp_method(fleet: FleetInProcess, method: str, body: dict[str, Any]) -> Any:
    cfg = fleet.sandbox.erp_config
    answer = requests.post(f"{fleet.sandbox.erp_url}/api/method/{method}", json=body,
                           timeout=10,
                           headers={"Authorization": f"token {cfg.api_key}:{cfg.api_secret}"})
    answer.raise_for_status()
    return answer.json()


def order_of(fleet: FleetInProcess, opportunity: str) -> dict[str, Any]:
    [order] = [o for o in fleet.documents("Sales Order") if o["salesforce_id"] == opportunity]
    return order


def keyed_copy(order: dict[str, Any], *, key: str, po_no: str, **extra: Any) -> dict[str, Any]:
    """A submitted Sales Order as a person keys it in the ERP: ``order``'s customer and
    items, one more of its first item."""
    items = [{k: row[k] for k in ROW_FIELDS} for row in order["items"]]
    items[0]["qty"] = Decimal(str(items[0]["qty"])) + 1
    return {"customer": order["customer"], "salesforce_id": key, "po_no": po_no,
            "currency": order["currency"], "selling_price_list": order["selling_price_list"],
            "transaction_date": order["transaction_date"],
            "delivery_date": order["delivery_date"], "docstatus": 1,
            "items": [{**row, "qty": str(row["qty"]), "rate": str(row["rate"]),
                       "price_list_rate": str(row["price_list_rate"]),
                       "discount_percentage": str(row["discount_percentage"]),
                       "delivery_date": order["delivery_date"]} for row in items], **extra}


@pytest.fixture
def fleet(fleet_in_process: Callable[..., FleetInProcess]) -> FleetInProcess:  # noqa: F811
    # Orders are invoiced when the test says so, so that one can still be amended.
    return fleet_in_process(erp={"invoice_delay_s": 3600})


def test_reconcile_names_each_disagreement_and_fix_repairs_the_safe_ones(
        fleet: FleetInProcess) -> None:
    a, b, c, d = (fleet.ok_opportunity(i) for i in range(4))
    keyed, unbooked = fleet.ok_opportunity(4), fleet.ok_opportunity(5)
    fleet.win(a, b, c, d)
    wait_for(lambda: all(fleet.sf_record("Opportunity", o)["ERP_Order_Number__c"]
                         for o in (a, b, c, d)), timeout_s=60, what="four orders written back")
    for opportunity in (a, b, c):
        requests.post(f"{fleet.sandbox.erp_url}/_sandbox/orders/"
                      f"{order_of(fleet, opportunity)['name']}/invoice",
                      timeout=10).raise_for_status()

    # A clean run agrees, once the invoices and payments have been written back.
    def clean() -> bool:
        status, report, _ = reconcile("--since", "1h")
        return status == 0 and report is not None and report["agrees"]
    wait_for(clean, timeout_s=60, interval_s=1.0, what="a clean reconcile")
    status, report, _ = reconcile("--since", "1h")
    assert status == 0 and report is not None
    assert report["checked"] == {"opportunities": 4, "won": 4, "orders": 4, "invoices": 3}
    assert report["counts"] == dict.fromkeys(report["counts"], 0) and report["findings"] == []
    assert report["cost"]["salesforce_calls"] == 2  # one page of opportunities, one of lines
    assert report["cost"]["erp_calls"] == 1 + 1 + 1 + 4  # listing, orders, invoices, 4 reads
    assert report["took_s"] > 0

    # One built to fail is won: its dead letter explains why it has no order.
    held = next(o for o, c in fleet.world.expected_failures.items() if c == "credit_hold")
    fleet.win(held)
    wait_for(lambda: fleet.dead_letters.ids(trace_key=held), timeout_s=30,
             what="the credit hold dead-lettered")

    # Behind the fleet's back (Salesforce holds its notifications from now on):
    fleet.sandbox.salesforce.simulator.sender.set_endpoint(None)
    # the ERP's order of D is cancelled and amended with one more item, and its new total;
    old = order_of(fleet, d)
    erp_method(fleet, "frappe.client.cancel", {"doctype": "Sales Order", "name": old["name"]})
    amended = fleet.erp("POST", "Sales Order", json=keyed_copy(
        old, key=f"{d}-1", po_no=d, amended_from=old["name"]))
    # a written-back field of A is edited in Salesforce;
    sf = fleet.sandbox.salesforce
    http = sf.session()
    http.headers["Authorization"] = f"Bearer {client_credentials(sf)}"
    version = fleet.settings.salesforce_api_version
    http.patch(f"{fleet.sandbox.sf_url}/services/data/v{version}/sobjects/Opportunity/{a}",
               json={"ERP_Order_Status__c": "Closed"}, timeout=10).raise_for_status()
    # an opportunity is won and an order keyed for it in the ERP with another total;
    fleet.win(keyed, unbooked)
    hand = fleet.erp("POST", "Sales Order", json=keyed_copy(order_of(fleet, b), key=keyed,
                                                           po_no=keyed))
    # and another won opportunity reaches nobody.

    expected = {("won_without_order", held),
                ("amount_mismatch", d), ("line_mismatch", d), ("stale_write_back", a),
                ("amount_mismatch", keyed), ("line_mismatch", keyed),
                ("stale_write_back", keyed), ("won_without_order", unbooked)}

    def named() -> dict[str, Any] | None:
        status, report, _ = reconcile("--since", "1h")
        assert status in (0, 1)
        return report if report and expected <= kinds(report) else None
    report = wait_for(named, timeout_s=30, interval_s=1.0, what="every disagreement named")
    assert report is not None and not report["agrees"]
    by = {(f["kind"], f["opportunity_id"]): f for f in report["findings"]}
    mismatch = by[("amount_mismatch", d)]
    assert mismatch["orders"] == [amended["name"]]
    assert mismatch["amounts"]["order_net_total"] == \
        f"{Decimal(str(amended['net_total'])):.2f} {amended['currency']}"
    assert mismatch["amounts"]["opportunity_amount"] != mismatch["amounts"]["order_net_total"]
    assert "quantity" in by[("line_mismatch", d)]["detail"]
    assert by[("stale_write_back", a)]["fields"] == {
        "ERP_Order_Status__c": {"salesforce": "Closed",
                                "erp": order_of(fleet, a)["status"]}}
    assert by[("stale_write_back", a)]["repair"] == "write_back"
    assert by[("amount_mismatch", keyed)]["orders"] == [hand["name"]]
    assert by[("stale_write_back", keyed)]["repair"] is None, "a wrong order is not confirmed"
    assert by[("won_without_order", unbooked)]["repair"] == "start_chain"
    assert by[("won_without_order", unbooked)]["explanation"] is None
    assert by[("won_without_order", held)]["explanation"].startswith(
        "open dead letter: credit_hold")
    assert report["cost"]["salesforce_calls"] >= 2

    # The table says the same to people (and the progress goes to stderr).
    get_settings.cache_clear()
    table = CliRunner().invoke(cli, ["reconcile", "--since", "1h"], env={"COLUMNS": "250"})
    print(table.stdout)
    assert table.exit_code == 1
    for label, opportunity in (("amount mismatch", d), ("stale write-back", a),
                               ("won, no order", unbooked), ("line mismatch", keyed)):
        assert label in table.stdout and opportunity in table.stdout
    assert "disagreement(s)" in table.stdout

    # --fix --dry-run says what it would start and changes nothing.
    status, dry, _ = reconcile("--since", "1h", "--fix", "--dry-run")
    assert status == 1 and dry is not None and dry["dry_run"]
    planned = {(r["opportunity_id"], r["action"]): r["outcome"] for r in dry["repairs"]}
    assert planned[(a, "write_back")] == "would_start"
    assert planned[(unbooked, "start_chain")] == "would_start"
    assert planned[(held, "start_chain")] == "left: it has an open dead letter"
    assert timeline.read(fleet.redis, "o2c", unbooked) == []
    assert fleet.sf_record("Opportunity", a)["ERP_Order_Status__c"] == "Closed"

    # --fix starts the safe repairs; the fleet carries them out; a second run agrees on
    # those and still lists the ones for people.
    status, fixed, _ = reconcile("--since", "1h", "--fix")
    assert status == 1 and fixed is not None
    started = {(r["opportunity_id"], r["action"]): r["outcome"] for r in fixed["repairs"]}
    assert started[(a, "write_back")] == "started"
    assert started[(unbooked, "start_chain")] == "started"
    assert f"amount_mismatch:{d}" in fixed["for_people"]
    assert f"amount_mismatch:{keyed}" in fixed["for_people"]
    assert f"won_without_order:{held}" in fixed["for_people"]

    def repaired() -> dict[str, Any] | None:
        _, report, _ = reconcile("--since", "1h")
        found = kinds(report) if report else set()
        if ("stale_write_back", a) in found or ("won_without_order", unbooked) in found:
            return None
        return report
    again = wait_for(repaired, timeout_s=60, interval_s=1.0, what="the repairs carried out")
    assert again is not None
    assert {("amount_mismatch", d), ("line_mismatch", d), ("amount_mismatch", keyed),
            ("line_mismatch", keyed)} <= kinds(again)
    assert not {k for k in kinds(again) if k[1] in (a, b, c, unbooked)}
    assert fleet.sf_record("Opportunity", a)["ERP_Order_Status__c"] == \
        order_of(fleet, a)["status"]
    assert [o["name"] for o in fleet.documents("Sales Order")
            if o["salesforce_id"] == unbooked], "the missing chain booked its order"
    status, _, _ = reconcile("--since", "1h")
    assert status == 1

    # The receiver answers the same report at GET /admin/reconcile.
    settings = fleet.settings.model_copy(update={
        "admin_token": SecretStr(ADMIN), "webhook_token": SecretStr("t"),
        "salesforce_org_ids": [fleet.world.org_id]})
    receiver = Receiver(settings, redis_client=fleet.redis, celery_app=celery_app)
    code, _, body = call_wsgi(receiver, "GET", "/admin/reconcile", query="since=1h",
                              headers={"Authorization": f"Bearer {ADMIN}"})
    assert code == 200
    served = orjson.loads(body)
    assert kinds(served) == kinds(again)
    assert served["checked"] == again["checked"] and served["counts"] == again["counts"]
    code, _, _ = call_wsgi(receiver, "GET", "/admin/reconcile", query="since=1h")
    assert code == 401
    code, _, body = call_wsgi(receiver, "GET", "/admin/reconcile", query="since=yesterday",
                              headers={"Authorization": f"Bearer {ADMIN}"})
    assert code == 400 and b"not a time" in body


@pytest.mark.parametrize("since", ["yesterday", "3 parsecs", "2999-01-01T00:00Z"])
def test_a_bad_since_is_refused_and_nothing_is_read(since: str, sandbox: Any,
                                                    redis_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**sandbox.env(), "O2C_REDIS_URL": redis_url}.items():
        monkeypatch.setenv(name, value)
    status, report, err = reconcile("--since", since)
    assert status == 2 and report is None
    assert "--since" in err and ("not a time" in err or "future" in err)
    calls = requests.get(f"{sandbox.erp_url}/_sandbox/calls", timeout=10).json()["calls"]
    assert calls == [], "nothing was read"
    assert sandbox.salesforce.simulator.limits.calls.get(("GET", "query"), 0) == 0


def test_dry_run_without_fix_is_a_usage_error() -> None:
    status, report, err = reconcile("--dry-run")
    assert status == 2 and report is None and "--fix" in err


def test_an_unreachable_erp_is_exit_status_2_with_a_clear_message(
        sandbox: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**sandbox.env(), "O2C_REDIS_URL": redis_url,
                        "O2C_ERP_BASE_URL": f"http://127.0.0.1:{free_port()}"}.items():
        monkeypatch.setenv(name, value)
    status, report, err = reconcile("--since", "1d")
    assert status == 2 and report is None
    assert "could not read both systems" in err and "nothing was changed" in err


def test_the_admin_endpoint_without_credentials_says_what_is_missing(redis_client: Any) -> None:
    settings = load_settings(redis_url="redis://127.0.0.1:1/0", webhook_token="t",
                             salesforce_org_ids=["00D000000000001"], admin_token=ADMIN)
    receiver = Receiver(settings, redis_client=redis_client, celery_app=celery_app)
    code, _, body = call_wsgi(receiver, "GET", "/admin/reconcile",
                              headers={"Authorization": f"Bearer {ADMIN}"})
    assert code == 503 and b"not configured" in body and b"missing required setting" in body
    code, _, _ = call_wsgi(receiver, "POST", "/admin/reconcile",
                           headers={"Authorization": f"Bearer {ADMIN}"})
    assert code == 405
