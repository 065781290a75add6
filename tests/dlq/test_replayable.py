"""A dead letter keeps the exact arguments its requeue replays; people see them redacted.

Names and codes here look like secrets to a text pattern ("Basic …", "Token …", "Bearer …",
e-mail addresses): the store keeps them exact (masking is by field name only), the views
(``o2c dlq show/list/export``, the admin API) mask them, and an edit saves the exact form.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from o2c_workers import sfid
from o2c_workers.chain import ChainContext, Pricing
from o2c_workers.cli import cli
from o2c_workers.dlq import DeadLetter, ops
from o2c_workers.models import ErpCustomer, ErpOrder, OrderData, OrderLine
from o2c_workers.redact import MASK
from tests import soapmsg
from tests.dlq.conftest import ADMIN, TOKEN
from tests.helpers import call_wsgi, queued

OPP, ACC = sfid.to18("0065g00000BaSiC"), sfid.to18("0015g00000BaSiC")
CUSTOMER = "Basic Elements Inc"
ITEMS = ("BASIC SUPPORT-12M", "TOKEN BEARER-7")
TITLE = "Bearer Token renewal for ops@basic-elements.example"
NOTE = "Authorization: Bearer abcdef123456"
#: Personal fields of Salesforce and ERP records, and their values (never stored in clear).
PERSONAL = {
    "FirstName": "Jane", "LastName": "Doughty", "Email": "jane.doughty@example.com",
    "Phone": "+1 415 555 0100", "MobilePhone": "+1 415 555 0199",
    "BillingStreet": "12 Elm Street", "BillingCity": "Springfield",
    "BillingPostalCode": "49007", "ShippingStreet": "7 Dock Road",
    "MailingCity": "Shelbyville",
}
ERP_PERSONAL = {"email_id": "accounts@doughty.example", "phone": "+91 80 5550 1234",
                "address_line1": "4 Lavelle Road", "city": "Bengaluru", "pincode": "560001",
                "contact_person": "Jane Doughty-Basic Elements"}


def context() -> dict[str, Any]:
    """The chain's context as the order step's dead letter holds it."""
    lines = [OrderLine(salesforce_id=f"00k5g00000000{n}AAA", item_code=code,
                       quantity=Decimal(2), list_price=Decimal("100.00"),
                       unit_price=Decimal("100.00"), total=Decimal("200.00"))
             for n, code in enumerate(ITEMS)]
    order = OrderData(opportunity_id=OPP, account_id=ACC, name=TITLE, currency="USD",
                      close_date=date(2026, 11, 20), lines=lines, amount=Decimal("400.00"))
    return ChainContext(
        trace_key=OPP, notification_id="04l5g00000BaSiC", sobject_type="Opportunity",
        route="opportunity_won", received_at=1_764_000_000.5,
        record={"Id": OPP, "AccountId": ACC, "Name": TITLE, "StageName": "Closed Won",
                "Description": f"Basic plan, Token ring; {NOTE}"},
        account_id=ACC, customer=ErpCustomer(name=CUSTOMER, salesforce_id=ACC, country="BR"),
        order=order, pricing=Pricing(tax_rate=Decimal(10), net_total=Decimal("400.00"),
                                     expected_grand_total=Decimal("440.00")),
        erp_order=ErpOrder(name="SAL-ORD-2026-00001", salesforce_id=OPP, status="To Bill",
                           docstatus=1, currency="USD", net_total=Decimal("400.00"),
                           total_taxes=Decimal("40.00"), grand_total=Decimal("440.00")),
    ).dump()


def order_entry(payload: dict[str, Any] | None = None) -> DeadLetter:
    payload = payload or context()
    return DeadLetter(trace_key=OPP, domain="order", task="o2c.order.write_back",
                      args=[payload], payload=payload, error_class="BusinessError",
                      category="business", message=f"Salesforce refused the write of {TITLE}",
                      traceback=f"Traceback ...\nBusinessError: {NOTE}")


def everything_in(redis_client) -> str:
    """Every value of every key of the test database, as text."""
    parts: list[bytes] = []
    for key in redis_client.keys("*"):
        kind = redis_client.type(key).decode()
        if kind == "hash":
            parts += redis_client.hvals(key)
        elif kind == "string":
            parts.append(redis_client.get(key))
        elif kind == "list":
            parts += redis_client.lrange(key, 0, -1)
        elif kind == "zset":
            parts += redis_client.zrange(key, 0, -1)
        elif kind == "stream":
            parts += [v for _, fields in redis_client.xrange(key) for v in fields.values()]
        elif kind == "set":
            parts += list(redis_client.smembers(key))
    return b"\n".join(parts).decode()


def test_the_stored_arguments_are_exact_and_requeue_replays_them(dlq, store, redis_client):
    exact = context()
    entry = store.add(order_entry())
    stored = store.get(entry.id)
    assert stored.args == [exact] and stored.payload == exact
    assert NOTE not in stored.message + stored.traceback
    ops.requeue_one(dlq, entry.id)
    [message] = queued(redis_client, "order")
    assert message["args"] == [exact]
    assert message["args"][0]["customer"]["name"] == CUSTOMER
    assert [line["item_code"] for line in message["args"][0]["order"]["lines"]] == list(ITEMS)


def test_personal_fields_are_masked_by_name_in_what_is_stored(store, redis_client):
    payload = {"trace_key": OPP, "sobject_type": "Account", "api_secret": "sk-123456789",
               "record": {"Id": ACC, "Name": CUSTOMER, **PERSONAL},
               "erp": {"customer_name": CUSTOMER, "item_code": ITEMS[0], **ERP_PERSONAL}}
    entry = store.add(DeadLetter(
        trace_key=ACC, domain="customer", task="o2c.customer.sync_account", args=[payload],
        payload=payload, error_class="BusinessError", category="business", message="no"))
    stored = store.get(entry.id)
    [args] = stored.args
    assert args["record"] == {"Id": ACC, "Name": CUSTOMER, **dict.fromkeys(PERSONAL, MASK)}
    assert args["erp"] == {"customer_name": CUSTOMER, "item_code": ITEMS[0],
                           **dict.fromkeys(ERP_PERSONAL, MASK)}
    assert args["api_secret"] == MASK and stored.payload == args
    held = everything_in(redis_client)
    for value in [*PERSONAL.values(), *ERP_PERSONAL.values(), "sk-123456789"]:
        assert value not in held, value


@pytest.fixture
def run(redis_url):
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(cli, ["dlq", *args],
                               env={"O2C_REDIS_URL": redis_url, "COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.stdout

    return invoke


def test_every_view_shows_the_redacted_form(dlq, store, receiver, run):
    entry = store.add(order_entry())
    admin = {"Authorization": f"Bearer {ADMIN}"}
    views = {
        "ops.show": json.dumps(ops.show(dlq, entry.id).model_dump(mode="json")),
        "cli show": run("show", entry.id, "--json"), "cli show table": run("show", entry.id),
        "cli list": run("list", "--json"), "cli export": run("export"),
        "admin show": call_wsgi(receiver, "GET", f"/admin/dlq/{entry.id}", headers=admin)[2],
        "admin list": call_wsgi(receiver, "GET", "/admin/dlq", headers=admin)[2],
    }
    for name, shown in views.items():
        text = shown.decode() if isinstance(shown, bytes) else shown
        assert entry.id in text, name
        for secret in ("abcdef123456", "ops@basic-elements.example"):
            assert secret not in text, (name, secret)
    assert store.get(entry.id).args == [context()]


def test_an_edit_saves_the_exact_form(dlq, store, redis_client):
    entry = store.add(order_entry())
    ops.edit(dlq, entry.id, sets=["erp_order.status=To Deliver and Bill",
                                  "record.Email=jane.doughty@example.com"])
    expected = context()
    expected["erp_order"]["status"] = "To Deliver and Bill"
    expected["record"]["Email"] = MASK
    assert store.get(entry.id).args == [expected]

    # A whole payload that starts from the view ($EDITOR, an API client) keeps what it
    # left as shown exactly as stored, not as the view's masks.
    shown = ops.show(dlq, entry.id).payload
    assert shown["customer"]["name"] != CUSTOMER  # the view masks "Basic Elements"
    shown["erp_order"]["status"] = "Completed"
    ops.edit(dlq, entry.id, payload=shown)
    expected["erp_order"]["status"] = "Completed"
    after = store.get(entry.id)
    assert after.args == [expected] and after.payload == expected
    assert after.original_payload == context()
    ops.requeue_one(dlq, entry.id)
    assert queued(redis_client, "order")[0]["args"] == [expected]


def test_a_stored_notification_is_exact_but_for_personal_fields(receiver, dlq, store,
                                                                 redis_client):
    fields = soapmsg.opportunity(8, Amount="lots", Name=f"{CUSTOMER} - {TITLE}",
                                 Description=f"Basic plan; {NOTE}")
    body = soapmsg.envelope([soapmsg.notification(soapmsg.notification_id(8), "Opportunity",
                                                  fields)])
    call_wsgi(receiver, "POST", "/salesforce/outbound", body, query=f"token={TOKEN}")
    [entry_id] = store.ids(category="invalid_payload")
    shown = ops.show(dlq, entry_id).payload
    assert "abcdef123456" not in shown["raw"] and CUSTOMER not in shown["raw"]

    # Edited from the view: the other fields are saved as they arrived.
    ops.edit(dlq, entry_id, payload={**shown, "raw": shown["raw"].replace("lots", "45000.0")})
    ops.requeue_one(dlq, entry_id)
    [message] = queued(redis_client, "customer")
    record = message["args"][0]["record"]
    assert (record["Name"], record["Description"]) == (fields["Name"], fields["Description"])
    assert record["Amount"] == "45000.0"
