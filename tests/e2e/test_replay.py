"""A dead letter replays what it was given: names that look like secrets to a text pattern
("Basic …", "Bearer …", "Token …", e-mail addresses) book and write back exactly."""

from __future__ import annotations

import pytest
import requests

from config import load_settings
from o2c_workers.dlq import Status
from o2c_workers.dlq.ops import requeue
from o2c_workers.receiver.replan import build_dlq
from o2c_workers.sandbox.world import World, generate_world
from tests.plugins.workers import wait_for

CUSTOMER = "Basic Elements Inc"
TITLE = "Bearer Token renewal for ops@basic-elements.example"
DESCRIPTION = "Basic plan; billing contact ap@basic-elements.example"
#: New product codes for the lines of the opportunity that fails.
CODES = ("BASIC SUPPORT-12M", "TOKEN BEARER-7", "BASIC ap@basic-elements.example")


def rename_product(world: World, old: str, new: str) -> None:
    """Give a product another code in both systems."""
    for sobject in ("Product2", "PricebookEntry", "OpportunityLineItem"):
        for record in world.of(sobject):
            if record.get("ProductCode") == old:
                record["ProductCode"] = new
    for item in world.erp.items:
        if item.code == old:
            item.code = new


def tricky_world() -> tuple[World, str]:
    """A world whose opportunity built to fail (no tax rule for its country) has a
    customer, a title and item codes that a text pattern would take for secrets."""
    world = generate_world(accounts=4, opportunities=4, credit_hold=0, missing_tax=1,
                           unknown_item=0)
    [(opp_id, category)] = world.expected_failures.items()
    assert category == "tax_configuration"
    opportunity = world.get("Opportunity", opp_id)
    opportunity.update(Name=TITLE, Description=DESCRIPTION)
    world.get("Account", opportunity["AccountId"])["Name"] = CUSTOMER
    lines = world.line_items(opp_id)
    for line, code in zip(lines, CODES, strict=False):
        rename_product(world, line["ProductCode"], code)
    return world, opp_id


@pytest.mark.slow
def test_a_requeued_dead_letter_books_and_writes_back_the_exact_names(o2c_factory, redis_url):
    world, opp_id = tricky_world()
    codes = {line["ProductCode"] for line in world.line_items(opp_id)}
    assert set(CODES[:2]) <= codes
    o2c = o2c_factory(world=world)
    o2c.win()
    o2c.wait_written_back(o2c.ok_opportunities())
    store = o2c.dead_letters()
    [entry_id] = wait_for(lambda: store.ids(trace_key=opp_id), what="the dead letter")
    entry = store.get(entry_id)
    assert (entry.category, entry.task) == ("tax_configuration", "o2c.pricing.validate_order")
    [context] = entry.args
    assert context["customer"]["name"] == CUSTOMER
    assert (context["record"]["Name"], context["record"]["Description"]) == (TITLE,
                                                                             DESCRIPTION)

    # Finance adds the missing tax rule; ops requeue. The chain books with the exact names.
    account = o2c.sf_records("Account")[context["account_id"]]
    requests.post(f"{o2c.sandbox.erp_url}/_sandbox/tax-rules",
                  json={"country": account["BillingCountry"], "rate": 10},
                  timeout=10).raise_for_status()
    dlq = build_dlq(load_settings(redis_url=redis_url), client=o2c.redis)
    assert [done["id"] for done in requeue(dlq, [entry_id]).done] == [entry_id]
    o2c.wait_written_back([opp_id])

    [order] = o2c.sales_orders_by_opportunity()[opp_id]
    assert (order["customer"], order["title"]) == (CUSTOMER, TITLE)
    assert {row["item_code"] for row in order["items"]} == codes
    assert o2c.sf_records("Opportunity")[opp_id]["ERP_Order_Number__c"] == order["name"]
    assert o2c.sf_records("Account")[context["account_id"]]["ERP_Customer_Number__c"] == \
        CUSTOMER
    assert wait_for(lambda: store.get(entry_id).status is Status.RESOLVED,
                    what="the dead letter resolved by the success")
    assert store.ids(trace_key=opp_id) == []
