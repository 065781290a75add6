"""The ERPNext adapter against the ERP simulator: idempotent creates, reads, exact money."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from o2c_workers.erp import ErpAdapter, ErpNextAdapter
from o2c_workers.models import ErpOrder, cents
from o2c_workers.sandbox.world import World
from tests.erp.support import (
    api_calls,
    customer_of,
    good_opportunities,
    make_adapter,
    order_of,
    sandbox,
    settings_for,
    start_erp,
)

__all__ = ["make_adapter", "start_erp"]


def test_the_adapter_fits_the_protocol() -> None:
    adapter: type[ErpAdapter] = ErpNextAdapter
    assert adapter is ErpNextAdapter


def test_ensure_customer_twice_creates_one_customer(world: World, start_erp,
                                                    make_adapter) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    account = world.of("Account")[0]
    data = customer_of(world, account["Id"])
    first = adapter.ensure_customer(data)
    second = adapter.ensure_customer(data)
    assert first == second
    assert (first.salesforce_id, first.country) == (account["Id"], account["BillingCountry"])
    assert adapter.find_customer(account["Id"][:15]) == first
    stats = sandbox(erp, "stats")
    assert stats["documents_created"]["Customer"] == 1
    assert len(api_calls(erp, "POST", "Customer")) == 1
    stored = erp.simulator.store.get("Customer", first.name)
    assert (stored["customer_name"], stored["default_currency"]) == (account["Name"],
                                                                      account["CurrencyIsoCode"])


def test_submit_sales_order_twice_yields_one_order(world: World, start_erp,
                                                   make_adapter) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    opp_id = good_opportunities(world)[0]
    order = order_of(world, opp_id)
    customer = adapter.ensure_customer(customer_of(world, order.account_id))
    first = adapter.submit_sales_order(order, customer)
    again = adapter.submit_sales_order(order, customer)
    assert again == first
    assert (first.salesforce_id, first.docstatus, first.status) == (opp_id, 1,
                                                                    "To Deliver and Bill")
    assert adapter.get_sales_order(first.name) == first
    # A lookup by key reads a list row: the order without its item rows.
    assert adapter.find_sales_order(opp_id) == first.model_copy(update={"lines": ()})
    stats = sandbox(erp, "stats")
    assert stats["documents_created"]["Sales Order"] == 1
    assert stats["duplicates_refused"]["by_doctype"] == {"Sales Order": 1}
    stored = erp.simulator.store.get("Sales Order", first.name)
    assert stored["po_no"] == order.opportunity_id
    assert stored["title"] == order.name
    assert stored["selling_price_list"] == f"Standard Selling {order.currency}"
    for line, row in zip(order.lines, stored["items"], strict=True):
        assert (row["item_code"], row["qty"], row["rate"]) == (line.item_code, line.quantity,
                                                                line.net_rate)
        assert row["discount_percentage"] == line.discount_percent


def test_money_stays_decimal_to_the_cent(world: World, start_erp, make_adapter) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    for opp_id in good_opportunities(world)[:4]:
        order = order_of(world, opp_id)
        customer = adapter.ensure_customer(customer_of(world, order.account_id))
        booked = adapter.submit_sales_order(order, customer)
        rate = adapter.tax_rate(customer.country or "")
        assert rate is not None and isinstance(rate, Decimal)
        for amount in (booked.net_total, booked.total_taxes, booked.grand_total):
            assert isinstance(amount, Decimal) and amount == cents(amount)
        assert booked.net_total == order.net_total == order.amount
        assert booked.total_taxes == cents(booked.net_total * rate / 100)
        assert booked.grand_total == booked.net_total + booked.total_taxes


def test_items_prices_tax_and_credit(world: World, start_erp, make_adapter) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    codes = [item.code for item in world.erp.items]
    assert adapter.known_items([*codes[:3], "LEG-S90"]) == set(codes[:3])
    assert adapter.known_items([]) == set()
    prices = adapter.item_prices([codes[0], "LEG-S90"], "EUR")
    assert prices == {codes[0]: world.erp.items[0].prices["EUR"]}
    assert adapter.item_prices(codes, "JPY") == {}
    assert adapter.tax_rate("Germany") == Decimal(19)
    assert adapter.tax_rate("Brazil") is None
    opp_id = good_opportunities(world)[0]
    order = order_of(world, opp_id)
    customer = adapter.ensure_customer(customer_of(world, order.account_id))
    before = adapter.credit_status(customer)
    assert (before.frozen, before.limit, before.outstanding) == (
        False, world.erp.default_credit_limit, Decimal("0.00"))
    booked = adapter.submit_sales_order(order, customer)
    assert adapter.credit_status(customer).outstanding == booked.grand_total


def test_invoice_and_payment_are_read_with_their_links(world: World, start_erp,
                                                       make_adapter) -> None:
    erp = start_erp(invoice_delay_s=0.05, payment_delay_s=0.05, partial_payment_ratio=0.0,
                    unpaid_ratio=0.0)
    adapter = make_adapter(settings_for(erp))
    order = order_of(world, good_opportunities(world)[0])
    booked = adapter.submit_sales_order(order, adapter.ensure_customer(
        customer_of(world, order.account_id)))
    deadline = time.monotonic() + 5
    while not erp.simulator.store.all("Payment Entry") and time.monotonic() < deadline:
        time.sleep(0.02)
    [invoice_doc] = erp.simulator.store.all("Sales Invoice")
    [payment_doc] = erp.simulator.store.all("Payment Entry")
    invoice = adapter.get_sales_invoice(invoice_doc["name"])
    assert (invoice.sales_order, invoice.currency) == (booked.name, order.currency)
    assert (invoice.net_total, invoice.grand_total) == (booked.net_total, booked.grand_total)
    payment = adapter.get_payment_entry(payment_doc["name"])
    assert payment.paid_amount == booked.grand_total
    assert payment.allocations == {invoice.name: booked.grand_total}
    assert payment.currency == order.currency
    assert adapter.get_sales_invoice(invoice.name).outstanding == Decimal("0.00")


def test_parallel_submits_of_one_opportunity_book_one_order(world: World, start_erp,
                                                            make_adapter) -> None:
    erp = start_erp(faults={"latency_ms": 20})
    order = order_of(world, good_opportunities(world)[1])
    data = customer_of(world, order.account_id)
    adapters = [make_adapter(settings_for(erp)) for _ in range(4)]

    def book(adapter: ErpNextAdapter) -> ErpOrder:
        return adapter.submit_sales_order(order, adapter.ensure_customer(data))

    with ThreadPoolExecutor(max_workers=4) as pool:
        booked = list(pool.map(book, adapters))
    assert len({b.name for b in booked}) == 1
    created = sandbox(erp, "stats")["documents_created"]
    assert (created["Customer"], created["Sales Order"]) == (1, 1)


def test_a_negotiated_price_is_booked_as_its_discount(world: World, start_erp,
                                                      make_adapter) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    order = order_of(world, good_opportunities(world)[-1])
    line = order.lines[0].model_copy(update={"discount_percent": Decimal(0)})
    line = line.model_copy(update={"unit_price": cents(line.list_price * Decimal("0.8765"))})
    order = order.model_copy(update={"lines": [line]})
    booked = adapter.submit_sales_order(order, adapter.ensure_customer(
        customer_of(world, order.account_id)))
    row = erp.simulator.store.get("Sales Order", booked.name)["items"][0]
    assert row["rate"] == line.unit_price == line.net_rate
    assert row["discount_percentage"] == line.effective_discount_percent
    assert booked.net_total == cents(line.unit_price * line.quantity)


def test_update_customer_changes_only_what_differs(world: World, start_erp,
                                                  make_adapter) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    account = world.of("Account")[0]
    data = customer_of(world, account["Id"])
    created = adapter.ensure_customer(data)
    assert adapter.update_customer(created, data) == created
    assert api_calls(erp, "PUT", "Customer") == []
    moved = data.model_copy(update={"name": "Renamed Ltd", "country": "Germany"})
    updated = adapter.update_customer(created, moved)
    assert (updated.name, updated.country) == (created.name, "Germany")
    stored = sandbox(erp, "stats")
    assert stored["documents"]["Customer"] == 1
    doc = erp.simulator.store.get("Customer", created.name)
    assert (doc["customer_name"], doc["country"]) == ("Renamed Ltd", "Germany")
    assert len(api_calls(erp, "PUT", "Customer")) == 1
