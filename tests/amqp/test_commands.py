"""``o2c resync`` and ``o2c reconcile --fix`` run as commands (typer's CliRunner) with
``O2C_BROKER_URL`` on a real vhost: what they start is on its quorum queue, confirmed, and
no Redis queue list is ever written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from typer.testing import CliRunner

from config import get_settings
from o2c_workers import keys
from o2c_workers.cli import cli
from o2c_workers.sandbox import Sandbox
from tests.amqp.conftest import Broker, queue_lists


@pytest.fixture
def o2c(sandbox: Sandbox, redis_url: str, amqp_url: str) -> Iterator[Any]:
    """``o2c(*args)``: the command with the sandbox's settings, on this vhost and the test
    Redis; its exit status and JSON output."""
    env = {**sandbox.env(), "O2C_REDIS_URL": redis_url, "O2C_BROKER_URL": amqp_url,
           "COLUMNS": "200"}

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        get_settings.cache_clear()  # each command reads the environment it is given
        try:
            result = CliRunner().invoke(cli, [*args, "--json"], env=env)
        finally:
            get_settings.cache_clear()
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            result.output
        return result.exit_code, json.loads(result.stdout)

    yield run


def unwon(sandbox: Sandbox, count: int) -> list[str]:
    return [o["Id"] for o in sandbox.world.of("Opportunity")
            if o["StageName"] != "Closed Won"][:count]


def submitted_invoice(sandbox: Sandbox) -> str:
    cfg = sandbox.erp_config
    auth = {"Authorization": f"token {cfg.api_key}:{cfg.api_secret}"}

    def erp(path: str, doc: dict[str, Any]) -> dict[str, Any]:
        answer = requests.post(f"{sandbox.erp_url}/api/resource/{path}", json=doc,
                               headers=auth, timeout=10)
        answer.raise_for_status()
        return dict(answer.json()["data"])

    customer = erp("Customer", {"customer_name": "Walk-in Trade Counter Ltd",
                                "country": "United States", "default_currency": "USD"})
    return erp("Sales Invoice", {"customer": customer["name"], "currency": "USD",
                                 "docstatus": 1, "items": [
                                     {"item_code": sandbox.world.erp.items[0].code,
                                      "qty": 2}]})["name"]


def chains(broker: Broker, queue: str, task: str) -> list[str]:
    return sorted(m["headers"]["trace_key"] for m in broker.take(queue)
                  if m["headers"]["task"] == task)


def test_resync_publishes_what_it_starts_to_rabbitmq(sandbox: Sandbox, o2c: Any,
                                                     broker: Broker,
                                                     redis_client: redis.Redis):
    opps = unwon(sandbox, 3)
    sandbox.salesforce.simulator.win(opps)
    invoice = submitted_invoice(sandbox)
    status, dry = o2c("resync", "--since", "1h", "--dry-run")
    assert status == 0 and not any(broker.counts().values())
    [planned] = [s for s in dry["sweeps"] if s["sweep"] == "opportunities"]
    assert {r["trace_key"] for r in planned["records"] if r["outcome"] == "would_start"} \
        == set(opps)
    status, done = o2c("resync", "--since", "1h")
    assert status == 0
    [sweep] = [s for s in done["sweeps"] if s["sweep"] == "opportunities"]
    assert sweep["started"] == 3
    assert done["erp_feed"]["started"] == 1
    assert chains(broker, "customer", "o2c.customer.ensure_customer") == sorted(opps)
    [message] = broker.take("invoice")
    assert message["args"][0]["name"] == invoice
    # The marks were written once the broker had confirmed: a second run starts nothing.
    assert all(redis_client.exists(keys.timeline("o2c", opp)) for opp in opps)
    status, again = o2c("resync", "--since", "1h")
    assert status == 0 and not any(broker.counts().values())
    assert [s["started"] for s in again["sweeps"]] == [0] * len(again["sweeps"])
    assert queue_lists(redis_client) == 0


def test_reconcile_fix_publishes_its_repairs_to_rabbitmq(sandbox: Sandbox, o2c: Any,
                                                         broker: Broker,
                                                         redis_client: redis.Redis):
    [unbooked] = unwon(sandbox, 1)
    sandbox.salesforce.simulator.win([unbooked])
    status, dry = o2c("reconcile", "--since", "1h", "--fix", "--dry-run")
    assert status == 1
    assert {(r["opportunity_id"], r["action"], r["outcome"]) for r in dry["repairs"]} == \
        {(unbooked, "start_chain", "would_start")}
    assert not any(broker.counts().values())
    status, fixed = o2c("reconcile", "--since", "1h", "--fix")
    assert status == 1
    assert {(r["opportunity_id"], r["action"], r["outcome"]) for r in fixed["repairs"]} == \
        {(unbooked, "start_chain", "started")}
    [message] = broker.take("customer")
    assert message["headers"]["task"] == "o2c.customer.ensure_customer"
    assert message["headers"]["trace_key"] == unbooked
    assert (message["exchange"], message["routing_key"]) == ("o2c", "customer")
    # Started once: the repair's mark keeps a second --fix from publishing it again.
    status, again = o2c("reconcile", "--since", "1h", "--fix")
    assert "started" not in {r["outcome"] for r in again["repairs"]}, again["repairs"]
    assert not any(broker.counts().values())
    assert queue_lists(redis_client) == 0
