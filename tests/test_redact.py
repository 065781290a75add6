"""Secrets and personal data are masked in free text and in structures; what a dead letter
replays is masked by field name only, never by text patterns over its values."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from o2c_workers.chain import ChainContext
from o2c_workers.logs import JsonFormatter, TextFormatter
from o2c_workers.receiver.erp_events import ErpEvent
from o2c_workers.redact import (
    MASK,
    PERSONAL_PAIRS,
    PERSONAL_WORDS,
    SECRET_KEY_PARTS,
    is_masked_key,
    is_personal_key,
    mask_fields,
    redact,
    redact_text,
)

#: Salesforce and ERPNext field names of personal data.
PERSONAL = (
    "FirstName", "LastName", "Email", "PersonEmail", "Phone", "MobilePhone",
    "HomePhone", "Fax", "BillingStreet", "BillingCity", "BillingPostalCode", "ShippingStreet",
    "ShippingCity", "ShippingPostalCode", "MailingStreet", "MailingCity",
    "PersonMailingPostalCode", "BillingAddress", "Birthdate", "email_id", "phone",
    "mobile_no", "address_line1", "address_line2", "city", "pincode", "contact_email",
    "contact_mobile", "contact_person", "contact_display", "first_name", "last_name",
)
#: Names with the same letters in them that are not personal.
NOT_PERSONAL = ("Name", "AccountId", "BillingCountry", "BillingState", "Capacity__c",
                "Ethnicity__c", "customer_name", "item_code", "country", "Website")


@pytest.mark.parametrize(("text", "secret"), [
    ("Authorization: Bearer abcdef123456", "abcdef123456"),
    ("authorization: bearer\tabcdef123456", "abcdef123456"),
    ("Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("Token key123:secret456", "key123:secret456"),
    ("POST /salesforce/outbound?token=s3cr3t-value&x=1", "s3cr3t-value"),
    ("retry with PASSWORD=hunter2 later", "hunter2"),
    ("url?SIG=abc123def", "abc123def"),
    ("<SessionId>00Dxx!AQ0AQ.secret</SessionId>", "00Dxx!AQ0AQ.secret"),
    ("<ns:sessionid xsi:type='x'>00Dxx!AQ0</ns:sessionid>", "00Dxx!AQ0"),
    ("redis://default:pa55word@cache:6379/0", "pa55word"),
    ("O2C_REDIS_URL=redis://:pa55word@cache:6379/0 refused", "pa55word"),
    ("sentinel://:pa55word@s1:26379,s2:26379/0?master=o2c", "pa55word"),
    ("options sentinel_password=pa55word&x=1", "pa55word"),
    ("client_secret=pa55word", "pa55word"),
    ("<sf:Email>jane@example.com</sf:Email>", "jane@example.com"),
    ("<sf:MobilePhone>+1 555 0100</sf:MobilePhone>", "+1 555 0100"),
    ("credit hold on the account of jane.doe@example.com", "jane.doe@example.com"),
])
def test_secrets_in_text_are_masked(text, secret):
    masked = redact_text(text)
    assert secret not in masked
    assert MASK in masked


@pytest.mark.parametrize("text", [
    "0065g0000000001AAA",
    "notification enqueued",
    "refused outbound message: malformed XML: not well-formed (invalid token): line 1",
    "<sf:Name>Acme</sf:Name>",
])
def test_ordinary_text_is_left_as_it_is(text):
    assert redact_text(text) == text


def test_structures_mask_secret_and_personal_keys_at_any_depth():
    value = {"trace_key": "006A", "Email": "jane@example.com",
             "nested": [{"api_key": "k-123", "Phone": "", "note": "token=abc123"}],
             "count": 3}
    assert redact(value) == {"trace_key": "006A", "Email": MASK,
                             "nested": [{"api_key": MASK, "Phone": "", "note": f"token={MASK}"}],
                             "count": 3}


@pytest.mark.parametrize("name", PERSONAL)
def test_personal_fields_are_known_by_name(name):
    assert is_personal_key(name)


@pytest.mark.parametrize("name", NOT_PERSONAL)
def test_other_fields_are_not_personal(name):
    assert not is_masked_key(name)


def test_mask_fields_masks_by_name_and_keeps_every_other_value_exact():
    exact = {"customer": "Basic Elements Inc", "item_code": "BASIC SUPPORT-12M",
             "title": "Bearer Token renewal for ops@basic.example", "note": "token=abc123",
             "lines": [{"item_code": "TOKEN BEARER-7", "quantity": "2"}], "count": 3}
    value = {**exact, "api_key": "k-123", "record": {"FirstName": "Jane", "Email": "",
                                                     "BillingCity": None}}
    assert mask_fields(value) == {**exact, "api_key": MASK, "record": {
        "FirstName": MASK, "Email": "", "BillingCity": None}}
    assert redact(exact)["customer"] == f"Basic {MASK} Inc"  # what people see of it


def test_the_readme_names_every_masked_field_word():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### What a dead letter stores"):]
    section = " ".join(section.split())
    for words in [*SECRET_KEY_PARTS, *PERSONAL_WORDS, *(" ".join(p) for p in PERSONAL_PAIRS)]:
        assert f"`{words}`" in section, words


def _field_names(model: type[BaseModel]) -> set[str]:
    schema = model.model_json_schema(by_alias=True)
    names: set[str] = set()
    for part in [schema, *schema.get("$defs", {}).values()]:
        names |= set(part.get("properties", {}))
    return names


def test_no_field_a_step_reads_is_masked_in_a_dead_letter():
    """Every field of the chain's context and of an ERP event is stored exactly (the steps
    read them on a requeue); of a notification's record the steps read only AccountId."""
    names = _field_names(ChainContext) | _field_names(ErpEvent) | {"AccountId", "Id"}
    assert "item_code" in names and "name" in names
    assert [name for name in sorted(names) if is_masked_key(name)] == []


def _record(**extra: Any) -> logging.LogRecord:
    return logging.makeLogRecord({
        "name": "o2c.test", "levelno": logging.INFO, "levelname": "INFO",
        "msg": "synced %s on %s", "args": ("Alder Foods", "celery@worker-1.example.com"),
        **extra})


def test_a_log_record_masks_personal_fields_by_name():
    contact = {"FirstName": "Jane", "LastName": "Doughty", "Email": "jane.doe@example.com",
               "MobilePhone": "+1 415 555 0199", "MailingCity": "Shelbyville"}
    erp = {"email_id": "ap@doughty.example", "phone": "+91 80 5550 1234",
           "address_line1": "4 Lavelle Road", "city": "Bengaluru", "pincode": "560001"}
    line = JsonFormatter().format(_record(
        contact=contact, erp=erp, BillingStreet="12 Elm Street", BillingPostalCode="49007",
        customer_name="Alder Foods", erp_token="t-0ken-value"))
    data = json.loads(line)
    assert data["contact"] == dict.fromkeys(contact, MASK)
    assert data["erp"] == dict.fromkeys(erp, MASK)
    assert (data["BillingStreet"], data["BillingPostalCode"]) == (MASK, MASK)
    assert (data["customer_name"], data["erp_token"]) == ("Alder Foods", MASK)
    # A node name is not an address: e-mail-like text in a log message stays.
    assert data["message"] == "synced Alder Foods on celery@worker-1.example.com"
    for value in [*contact.values(), *erp.values(), "12 Elm Street", "49007", "t-0ken-value"]:
        assert value not in line


def test_text_lines_mask_the_arguments_of_the_message_too():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter("%(levelname)s %(message)s"))
    record = _record(msg="calling with token=%s for %s", args=("s3cr3t-value", "Alder"))
    handler.handle(record)
    assert stream.getvalue() == f"INFO calling with token={MASK} for Alder\n"
    assert record.args == ("s3cr3t-value", "Alder")  # other handlers get it whole
