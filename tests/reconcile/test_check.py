"""The comparison over what was read of both systems: the lifecycle (only the live order
counts, a lost opportunity whose order is cancelled agrees), duplicates, orders of lost
opportunities, amounts to the cent with currencies, and the written-back fields."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from o2c_workers.models import ErpInvoice, ErpOrder, ErpOrderLine
from o2c_workers.reconcile import KINDS
from o2c_workers.reconcile.check import check
from o2c_workers.reconcile.read import Snapshot
from o2c_workers.services.orders import WriteBackFields

OPP = "0065L00003A0B07QAF"
FIELDS = WriteBackFields()


def opportunity(stage: str = "Closed Won", **fields: Any) -> dict[str, Any]:
    return {"Id": OPP, "AccountId": "0015L00003A0B07QAF", "Name": "Acme - hardware",
            "StageName": stage, "Amount": Decimal("200.00"), "CurrencyIsoCode": "EUR",
            "ERP_Order_Number__c": "SO-1", "ERP_Order_Status__c": "To Deliver",
            "Invoice_Status__c": "Unpaid", **fields}


def line(qty: str = "2") -> dict[str, Any]:
    return {"Id": "00k5L00000A0B07QAF", "OpportunityId": OPP, "ProductCode": "GW-200",
            "Quantity": Decimal(qty), "ListPrice": Decimal("100"), "UnitPrice": Decimal("100"),
            "Discount": None, "TotalPrice": Decimal(qty) * 100}


def order(name: str = "SO-1", *, key: str = OPP, docstatus: int = 1,
          status: str = "To Deliver", net: str = "200.00", qty: str = "2") -> ErpOrder:
    return ErpOrder(name=name, salesforce_id=key, status=status, docstatus=docstatus,
                    currency="EUR", net_total=Decimal(net), total_taxes=Decimal("38.00"),
                    grand_total=Decimal(net) + Decimal("38.00"),
                    lines=(ErpOrderLine(item_code="GW-200", qty=Decimal(qty),
                                        rate=Decimal("100"), price_list_rate=Decimal("100"),
                                        amount=Decimal(net)),))


def invoice(total: str = "238.00", status: str = "Unpaid") -> ErpInvoice:
    return ErpInvoice(name="SINV-1", sales_order=None, salesforce_id=None, status=status,
                      currency="EUR", net_total=Decimal("200.00"), grand_total=Decimal(total),
                      outstanding=Decimal(total), opportunity_id=OPP)


def snap(opp: dict[str, Any] | None, orders: list[ErpOrder],
         invoices: list[ErpInvoice] | None = None) -> Snapshot:
    s = Snapshot(0.0)
    if opp is not None:
        s.opportunities[OPP] = opp
        s.lines[OPP] = [line()]
    if orders:
        s.orders[OPP] = orders
    s.details = {o.name: o for o in orders if o.live}
    s.invoices = {OPP: invoices} if invoices else {}
    return s


def kinds(s: Snapshot) -> list[str]:
    return [f.kind for f in check(s, FIELDS)]


def test_a_won_opportunity_its_order_and_invoice_agreeing_to_the_cent() -> None:
    assert kinds(snap(opportunity(), [order()], [invoice()])) == []


def test_only_the_live_order_counts_after_an_amendment() -> None:
    cancelled = order("SO-1", docstatus=2, status="Cancelled", net="999.00", qty="9")
    amended = order("SO-1-1", key=f"{OPP}-1")
    assert kinds(snap(opportunity(ERP_Order_Number__c="SO-1-1"), [cancelled, amended],
                      [invoice()])) == []


def test_a_lost_opportunity_whose_order_is_cancelled_agrees() -> None:
    cancelled = order(docstatus=2, status="Cancelled")
    lost = opportunity("Closed Lost", ERP_Order_Status__c="Cancelled", Invoice_Status__c=None)
    assert kinds(snap(lost, [cancelled])) == []


def test_a_lost_opportunity_with_a_live_order_is_an_order_without_a_won_one() -> None:
    [found] = check(snap(opportunity("Closed Lost"), [order()]), FIELDS)
    assert found.kind == "order_without_won" and "Closed Lost" in found.detail
    assert found.repair is None
    [gone] = check(snap(None, [order()]), FIELDS)
    assert gone.kind == "order_without_won" and "not in Salesforce" in gone.detail


def test_two_live_orders_are_a_duplicate_for_people() -> None:
    [found] = check(snap(opportunity(), [order("SO-1"), order("SO-2", key=f"{OPP}-1")]),
                    FIELDS)
    assert (found.kind, found.orders, found.repair) == ("duplicate_orders", ["SO-1", "SO-2"], None)


def test_won_with_only_cancelled_orders_is_not_started_again_by_fix() -> None:
    [found] = check(snap(opportunity(ERP_Order_Status__c="Cancelled", Invoice_Status__c=None),
                         [order(docstatus=2, status="Cancelled")]), FIELDS)
    assert found.kind == "won_without_order" and "SO-1 Cancelled" in found.detail
    assert found.repair is None
    [none] = check(snap(opportunity(ERP_Order_Number__c=None, ERP_Order_Status__c=None,
                                    Invoice_Status__c=None), []), FIELDS)
    assert (none.kind, none.repair) == ("won_without_order", "start_chain")


def test_amounts_to_the_cent_with_currencies() -> None:
    found = check(snap(opportunity(Amount=Decimal("200.01")), [order()], [invoice()]), FIELDS)
    [amount] = [f for f in found if f.kind == "amount_mismatch"]
    assert amount.amounts == {"opportunity_amount": "200.01 EUR",
                              "order_net_total": "200.00 EUR",
                              "order_grand_total": "238.00 EUR", "invoice_total": "238.00 EUR"}
    [billed] = check(snap(opportunity(), [order()], [invoice("238.01")]), FIELDS)
    assert billed.kind == "amount_mismatch" and "invoice total 238.01 EUR" in billed.detail
    [money] = check(snap(opportunity(CurrencyIsoCode="USD"), [order()], [invoice()]), FIELDS)
    assert "currency USD in Salesforce, EUR in the ERP" in money.detail


def test_lines_are_compared_item_by_item() -> None:
    s = snap(opportunity(), [order()], [invoice()])
    s.lines[OPP] = [line("3")]
    found = {f.kind: f for f in check(s, FIELDS)}
    assert "quantity 2 → 3" in found["line_mismatch"].detail


def test_a_stale_write_back_is_safe_to_repair_only_when_the_order_agrees() -> None:
    [stale] = check(snap(opportunity(ERP_Order_Status__c="Closed"), [order()], [invoice()]),
                    FIELDS)
    assert stale.fields == {"ERP_Order_Status__c": {"salesforce": "Closed",
                                                    "erp": "To Deliver"}}
    assert stale.repair == "write_back"
    wrong = check(snap(opportunity(ERP_Order_Status__c="Closed", Amount=Decimal(1)),
                       [order()], [invoice()]), FIELDS)
    assert [(f.kind, f.repair) for f in wrong] == [("amount_mismatch", None),
                                                   ("stale_write_back", None)]


def test_payment_status_none_yet_reads_as_unpaid_but_not_as_paid() -> None:
    assert kinds(snap(opportunity(), [order()], [invoice()])) == []
    paid = invoice(status="Paid").model_copy(update={"outstanding": Decimal("0.00")})
    [stale] = check(snap(opportunity(), [order()], [paid]), FIELDS)
    assert stale.fields == {"Invoice_Status__c": {"salesforce": "Unpaid", "erp": "Paid"},
                            "Payment_Status__c": {"salesforce": None, "erp": "Paid"}}


def test_the_readme_explains_every_kind_of_finding() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Reconcile"):readme.index("## Operating it")]
    for kind in KINDS:
        assert f"| `{kind}` |" in section, f"the README's reconcile table lacks {kind}"
