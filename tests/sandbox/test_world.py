"""The seed world: deterministic, internally consistent, mirrored by the ERP seed."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from o2c_workers import sfid
from o2c_workers.sandbox.world import (
    CREDIT_HOLD,
    TAX_CONFIGURATION,
    UNKNOWN_ITEM,
    generate_world,
    line_total,
)

PREFIXES = {"Account": "001", "Contact": "003", "Opportunity": "006",
            "OpportunityLineItem": "00k", "Product2": "01t", "PricebookEntry": "01u",
            "Pricebook2": "01s"}


def test_same_seed_same_world_other_seed_other_world() -> None:
    assert generate_world(seed=3) == generate_world(seed=3)
    assert generate_world(seed=3).opportunity_ids != generate_world(seed=4).opportunity_ids


def test_counts_and_ids() -> None:
    world = generate_world(accounts=12, opportunities=40)
    assert len(world.of("Account")) == 12 and len(world.of("Opportunity")) == 40
    assert world.org_id.startswith("00D") and sfid.is_valid(world.org_id)
    seen: set[str] = set()
    for sobject, prefix in PREFIXES.items():
        for record in world.of(sobject):
            assert sfid.is_valid(record["Id"]) and len(record["Id"]) == 18
            assert record["Id"].startswith(prefix)
            seen.add(record["Id"])
    assert len(seen) == sum(len(world.of(t)) for t in PREFIXES)


def test_money_is_decimal_and_totals_reconcile() -> None:
    world = generate_world(accounts=8, opportunities=25)
    accounts = {a["Id"]: a for a in world.of("Account")}
    discounted = 0
    for opp in world.of("Opportunity"):
        assert opp["StageName"] in {"Prospecting", "Qualification", "Proposal/Price Quote",
                                    "Negotiation/Review"}
        assert opp["CurrencyIsoCode"] == accounts[opp["AccountId"]]["CurrencyIsoCode"]
        lines = world.line_items(opp["Id"])
        assert lines
        for line in lines:
            assert isinstance(line["TotalPrice"], Decimal)
            assert line["TotalPrice"] == line_total(line["Quantity"], line["UnitPrice"],
                                                    line["Discount"])
            assert line["TotalPrice"].as_tuple().exponent == -2
            discounted += line["Discount"] is not None
        assert opp["Amount"] == sum(line["TotalPrice"] for line in lines)
    assert discounted > 0


def test_line_total_rounds_half_up_to_the_cent() -> None:
    assert line_total(Decimal(3), Decimal("89.50"), Decimal("12.5")) == Decimal("234.94")
    assert line_total(Decimal(1), Decimal("10.00"), None) == Decimal("10.00")


def test_erp_seed_mirrors_products_and_prices() -> None:
    world = generate_world()
    items = {item.code: item for item in world.erp.items}
    entries = world.of("PricebookEntry")
    for entry in entries:
        if entry["ProductCode"] in items:
            assert items[entry["ProductCode"]].prices[entry["CurrencyIsoCode"]] == entry[
                "UnitPrice"]
    for line in world.of("OpportunityLineItem"):
        if line["ProductCode"] in items:
            assert line["UnitPrice"] == items[line["ProductCode"]].prices[
                line["CurrencyIsoCode"]]


def test_designed_failures() -> None:
    world = generate_world(accounts=20, opportunities=60, credit_hold=3, missing_tax=2,
                           unknown_item=4)
    assert Counter(world.expected_failures.values()) == {
        CREDIT_HOLD: 3, TAX_CONFIGURATION: 2, UNKNOWN_ITEM: 4}
    items = {item.code for item in world.erp.items}
    for opp_id, category in world.expected_failures.items():
        opp = world.get("Opportunity", opp_id)
        account = world.get("Account", opp["AccountId"])
        codes = {line["ProductCode"] for line in world.line_items(opp_id)}
        assert (account["Id"] in world.erp.credit_hold) == (category == CREDIT_HOLD)
        assert (account["BillingCountry"] not in world.erp.tax_rates) == (
            category == TAX_CONFIGURATION)
        assert (not codes <= items) == (category == UNKNOWN_ITEM)
    healthy = [o for o in world.of("Opportunity") if o["Id"] not in world.expected_failures]
    for opp in healthy:
        account = world.get("Account", opp["AccountId"])
        assert account["Id"] not in world.erp.credit_hold
        assert account["BillingCountry"] in world.erp.tax_rates
        assert {line["ProductCode"] for line in world.line_items(opp["Id"])} <= items


def test_personal_data_present_on_contacts() -> None:
    world = generate_world(accounts=5, opportunities=10)
    contacts = world.of("Contact")
    assert contacts and all("@" in c["Email"] and c["Phone"] for c in contacts)


def test_too_few_records_for_the_failures_is_refused() -> None:
    with pytest.raises(ValueError, match="accounts"):
        generate_world(accounts=3, opportunities=10)
    with pytest.raises(ValueError, match="opportunities"):
        generate_world(accounts=10, opportunities=5)
