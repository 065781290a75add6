"""The opportunity read once per order: one SOQL query for the opportunity, its account and
its lines, used by the customer and pricing steps; counted by the simulator's own record."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from o2c_workers import keys, sfid
from o2c_workers.chain import ChainContext
from o2c_workers.errors import InvalidPayload, NotFound
from o2c_workers.services import customer, lifecycle, orders, pricing, reading
from o2c_workers.services.convert import line_from_item
from tests.salesforce.test_client import api_calls
from tests.services.test_lifecycle import FIELDS, reprice
from tests.services.test_pricing import POLICY, good


def calls(services) -> dict[tuple[str, str], int]:
    return api_calls(services.sandbox.salesforce)


def spent(services, before: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """The calls made since ``before``, by (method, resource)."""
    now = calls(services)
    return {key: n - before.get(key, 0) for key, n in now.items() if n != before.get(key, 0)}


def test_one_query_reads_the_opportunity_its_account_and_its_lines(services):
    world = services.sandbox.world
    opp = next(o for o in world.of("Opportunity") if len(world.line_items(o["Id"])) >= 2)
    account = next(a for a in world.of("Account") if a["Id"] == opp["AccountId"])
    before = calls(services)
    read = reading.read_opportunity(services.sf, sfid.to15(opp["Id"]))
    assert spent(services, before) == {("GET", "query"): 1}
    assert set(read.opportunity) == set(reading.OPPORTUNITY_FIELDS)
    assert read.opportunity["StageName"] == opp["StageName"]
    assert read.opportunity["Amount"] == Decimal(str(opp["Amount"]))
    assert read.account == {f: account.get(f) for f in reading.ACCOUNT_FIELDS}
    lines = world.line_items(opp["Id"])
    assert [line["Id"] for line in read.lines] == [line["Id"] for line in lines]
    assert all(set(line) == set(reading.LINE_FIELDS) for line in read.lines)
    # What the conversions read is all there, exactly as a REST read of the line gives it.
    [rest_line, *_] = services.sf.get_line_items(opp["Id"])
    assert line_from_item(read.lines[0]) == line_from_item(rest_line)


def test_many_opportunities_in_one_query_and_the_missing_left_out(services):
    ids = services.sandbox.world.opportunity_ids[:5]
    deleted = sfid.to18("0065L00009ZZZZZ")
    before = calls(services)
    found = reading.read_opportunities(services.sf, [*ids, deleted, sfid.to15(ids[0])])
    assert spent(services, before) == {("GET", "query"): 1}
    assert sorted(found) == sorted(sfid.to18(i) for i in ids)
    with pytest.raises(NotFound) as caught:
        reading.read_opportunity(services.sf, deleted)
    assert caught.value.category == "not_found" and deleted in caught.value.message


def test_a_malformed_id_is_refused_before_any_call(services):
    before = calls(services)
    with pytest.raises(InvalidPayload) as caught:
        reading.read_opportunities(services.sf, ["006') OR Name != ('"])
    assert caught.value.reason == "MALFORMED_ID"
    assert spent(services, before) == {}


def test_more_lines_than_a_page_are_all_read(services):
    opp = good(services)
    [template, *_] = services.sandbox.world.line_items(opp)
    store = services.sandbox.salesforce.simulator.store
    for n in range(230):
        store.save("OpportunityLineItem", None, {
            "OpportunityId": opp, "Product2Id": template["Product2Id"],
            "ProductCode": template["ProductCode"], "Quantity": 1 + n % 3,
            "UnitPrice": template["UnitPrice"], "ListPrice": template["ListPrice"]})
    before = calls(services)
    read = reading.read_opportunity(services.sf, opp)
    assert len(read.lines) == len(services.sf.get_line_items(opp)) > 230
    assert spent(services, before)[("GET", "query")] == 2


def test_the_customer_and_pricing_steps_read_salesforce_once(services):
    opp = good(services)
    services.sf.update("Opportunity", opp, {"StageName": "Closed Won"})
    before = calls(services)
    ctx = customer.ensure_customer(ChainContext(trace_key=opp, record={"AccountId": "x"}),
                                   sf=services.sf, erp=services.erp)
    # The context travels as JSON between the steps, without the account's fields.
    assert ctx.opportunity is not None and ctx.opportunity.account is None
    assert "BillingCity" not in str(ctx.dump())
    ctx = ChainContext.load(ctx.dump())
    priced = pricing.validate_order(ctx, sf=services.sf, erp=services.erp,
                                    max_discount_percent=POLICY)
    assert isinstance(priced, ChainContext) and priced.opportunity is None
    assert spent(services, before) == {("GET", "query"): 1}
    assert priced.need_order().amount == priced.need_order().net_total
    assert ctx.opportunity is not None and priced.pricing is not None
    assert priced.pricing.priced_at == ctx.opportunity.read_at
    # The order step: its order (no note that it left Closed Won: no stage read), then
    # the write-back. One read and one write in all.
    booked = lifecycle.book(priced, sf=services.sf, out=services.out, erp=services.erp,
                            left=services.left, reprice=reprice(services), fields=FIELDS,
                            cancel_on_lost=True)
    assert isinstance(booked, orders.Booked)
    orders.write_back(booked.ctx, out=services.out, fields=FIELDS)
    assert spent(services, before) == {("GET", "query"): 1, ("PATCH", "composite/sobjects"): 1}


def test_a_stale_read_is_read_again_and_the_order_step_never_books_from_one(services):
    opp = good(services)
    ctx = services.won(opp)
    assert ctx.opportunity is not None
    stale = ctx.model_copy(update={"opportunity": ctx.opportunity.model_copy(
        update={"read_at": time.time() - pricing.REPRICE_AFTER_S - 1})})
    before = calls(services)
    priced = pricing.validate_order(stale, sf=services.sf, erp=services.erp,
                                    max_discount_percent=POLICY)
    assert isinstance(priced, ChainContext)
    assert spent(services, before) == {("GET", "query"): 1}
    assert priced.pricing is not None and priced.pricing.priced_at > stale.opportunity.read_at
    # A context with no pricing reaches the order step with the first step's read still
    # fresh: the order step reads Salesforce itself.
    before = calls(services)
    booked = orders.submit_order(ctx, erp=services.erp, reprice=reprice(services))
    assert isinstance(booked, orders.Booked)
    assert spent(services, before) == {("GET", "query"): 1}


def follow(services, opp: str) -> lifecycle.Followed:
    """The step of the loss's own outbound message."""
    return lifecycle.follow_opportunity(opp, sf=services.sf, out=services.out,
                                        erp=services.erp, left=services.left, fields=FIELDS,
                                        cancel_on_lost=True)


def book(services, priced: ChainContext):
    return lifecycle.book(priced, sf=services.sf, out=services.out, erp=services.erp,
                          left=services.left, reprice=reprice(services), fields=FIELDS,
                          cancel_on_lost=True)


@pytest.mark.parametrize("follow_first", [True, False], ids=["follow-first", "book-first"])
def test_lost_after_the_chains_read_leaves_no_live_order(services, follow_first):
    """Lost between the first step's read and the pricing: priced from the read (still in
    date) and booked. Whichever of the order step and the loss's own step runs first, no
    order stays live: the loss's step finds the order, or notes the loss before it looks,
    and the order step, seeing the note, reads the stage and cancels."""
    opp = good(services)
    ctx = services.won(opp)
    services.sf.update("Opportunity", opp, {"StageName": "Closed Lost"})
    priced = pricing.validate_order(ctx, sf=services.sf, erp=services.erp,
                                    max_discount_percent=POLICY)
    assert isinstance(priced, ChainContext)
    if follow_first:
        assert follow(services, opp).action == lifecycle.NO_ORDER
        done = book(services, priced)
        assert isinstance(done, lifecycle.Followed)
    else:
        assert isinstance(book(services, priced), orders.Booked)
        done = follow(services, opp)
    assert (done.action, done.stage) == ("cancelled", "Closed Lost")
    assert [o for o in services.erp.find_sales_orders(opp) if o.live] == []


def test_a_note_from_a_loss_since_won_again_costs_one_read_and_books(services):
    opp = good(services)
    services.sf.update("Opportunity", opp, {"StageName": "Closed Lost"})
    assert follow(services, opp).action == lifecycle.NO_ORDER
    assert services.left.seen(opp)
    note = keys.left_won(services.settings.key_prefix, sfid.to18(opp))
    assert 0 < services.left.redis.ttl(note) <= services.settings.dedupe_ttl_s
    ctx = services.won(opp)
    priced = pricing.validate_order(ctx, sf=services.sf, erp=services.erp,
                                    max_discount_percent=POLICY)
    before = calls(services)
    booked = book(services, priced)
    assert isinstance(booked, orders.Booked) and booked.action == "created"
    assert spent(services, before) == {("GET", "Opportunity"): 1}
    # An id in its 15-character form finds the same note.
    assert services.left.seen(opp[:15])


def test_an_opportunity_without_an_account_is_invalid(services):
    store = services.sandbox.salesforce.simulator.store
    bare = store.save("Opportunity", None, {"Name": "No account", "StageName": "Closed Won",
                                            "CloseDate": "2026-12-31"})["Id"]
    with pytest.raises(InvalidPayload, match="AccountId is missing"):
        customer.ensure_customer(ChainContext(trace_key=bare), sf=services.sf,
                                 erp=services.erp)
