"""Invoices and payments written back to their opportunities, against the simulators: no
worker. The sandbox's ERP invoices a submitted order and then pays it in full, quickly."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from o2c_workers.errors import BusinessError, NotFound, NotOurs
from o2c_workers.models import ErpInvoice
from o2c_workers.sandbox.erp import ErpConfig
from o2c_workers.services import billing
from o2c_workers.services.orders import WriteBackFields
from tests.plugins.workers import wait_for
from tests.services.test_orders import priced, submit
from tests.services.test_pricing import good

FIELDS = WriteBackFields()


@pytest.fixture
def sandbox(sandbox_factory):
    return sandbox_factory(erp_config=ErpConfig(
        invoice_delay_s=0.2, payment_delay_s=0.2, unpaid_ratio=0.0, partial_payment_ratio=0.0))


def documents(services, doctype: str) -> list[dict]:
    answer = requests.get(f"{services.sandbox.erp_url}/_sandbox/documents/{doctype}", timeout=5)
    answer.raise_for_status()
    return answer.json()["data"]


def booked(services) -> tuple[str, str]:
    """A good opportunity booked in the ERP: its id and its order's name."""
    opp = good(services)
    order = submit(services, priced(services, opp)).need_erp_order()
    return opp, order.name


def invoice_of(services, order_name: str) -> str:
    def found() -> str | None:
        return next((doc["name"] for doc in documents(services, "Sales Invoice")
                     if order_name in {row.get("sales_order") for row in doc["items"]}), None)
    return wait_for(found, timeout_s=10, what=f"the invoice of {order_name}")


def payment_of(services, invoice_name: str) -> str:
    def found() -> str | None:
        return next((doc["name"] for doc in documents(services, "Payment Entry")
                     if invoice_name in {ref.get("reference_name")
                                         for ref in doc["references"]}), None)
    return wait_for(found, timeout_s=10, what=f"the payment of {invoice_name}")


def opportunity(services, opp: str) -> dict:
    return services.sf.get_opportunity(opp)


def test_an_invoice_reconciled_with_its_order_writes_its_status(services):
    opp, order_name = booked(services)
    synced = billing.sync_invoice(invoice_of(services, order_name), out=services.out,
                                  erp=services.erp, fields=FIELDS)
    assert synced.opportunity_id == opp and synced.order.name == order_name
    assert synced.invoice.grand_total == synced.order.grand_total
    assert opportunity(services, opp)[FIELDS.invoice_status] == synced.invoice.status


def test_a_payment_writes_payment_and_invoice_status_to_each_opportunity(services):
    opp, order_name = booked(services)
    payment = payment_of(services, invoice_of(services, order_name))
    [synced] = billing.apply_payment(payment, out=services.out, erp=services.erp,
                                     fields=FIELDS)
    assert synced.opportunity_id == opp
    record = opportunity(services, opp)
    assert record[FIELDS.payment_status] == "Paid"
    assert record[FIELDS.invoice_status] == synced.invoice.status == "Paid"


def test_an_unknown_invoice_is_not_found_and_writes_nothing(services):
    opp, _ = booked(services)
    with pytest.raises(NotFound):
        billing.sync_invoice("ACC-SINV-NONE-00001", out=services.out, erp=services.erp,
                             fields=FIELDS)
    assert opportunity(services, opp).get(FIELDS.invoice_status) is None


def invoice(outstanding: str, total: str = "100.00") -> ErpInvoice:
    return ErpInvoice(name="ACC-SINV-1", sales_order="SO-1", salesforce_id=None,
                      status="Unpaid", currency="EUR", net_total=Decimal(total),
                      grand_total=Decimal(total), outstanding=Decimal(outstanding))


@pytest.mark.parametrize(("outstanding", "status"), [
    ("0.00", "Paid"), ("-0.004", "Paid"), ("0.01", "Partly Paid"), ("99.99", "Partly Paid"),
    ("100.00", "Unpaid"),
])
def test_payment_status_follows_the_outstanding_amount_to_the_cent(outstanding, status):
    assert billing.payment_status(invoice(outstanding)) == status


def test_an_invoice_without_an_order_is_not_ours(services):
    with pytest.raises(NotOurs, match="made from no sales order"):
        billing.order_of_invoice(invoice("0", "0").model_copy(update={"sales_order": None}),
                                 services.erp)


def test_an_invoice_that_differs_from_its_order_is_a_reconciliation_refusal(services):
    opp, order_name = booked(services)
    order = services.erp.http.call("GET", f"/api/resource/Sales Order/{order_name}")["data"]
    row = order["items"][0]
    # Keyed in by hand in the ERP: one more unit than the order.
    short = services.erp.http.call("POST", "/api/resource/Sales Invoice", body={
        "customer": order["customer"], "currency": order["currency"], "docstatus": 1,
        "items": [{"item_code": row["item_code"], "qty": row["qty"] + 1, "rate": row["rate"],
                   "price_list_rate": row["price_list_rate"],
                   "discount_percentage": row["discount_percentage"],
                   "sales_order": order_name}]})["data"]
    with pytest.raises(BusinessError) as caught:
        billing.sync_invoice(short["name"], out=services.out, erp=services.erp, fields=FIELDS)
    assert caught.value.category == "reconciliation"
    assert order_name in str(caught.value) and short["name"] in str(caught.value)
    assert opportunity(services, opp).get(FIELDS.invoice_status) is None
