"""Secrets and personal data are masked in free text and in structures."""

from __future__ import annotations

import pytest

from o2c_workers.redact import MASK, redact, redact_text


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
    ("<sf:Email>jane@example.com</sf:Email>", "jane@example.com"),
    ("<sf:MobilePhone>+1 555 0100</sf:MobilePhone>", "+1 555 0100"),
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
    assert redact(value, personal=False)["Email"] == "jane@example.com"
