"""Parsing outbound messages: by namespace, nested fields, nil values and the stored XML."""

from __future__ import annotations

import pytest

from o2c_workers.receiver import soap
from o2c_workers.receiver.outbound import parse_notification
from o2c_workers.redact import MASK
from tests import soapmsg

NESTED = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    b'xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><s:Body>'
    b'<o:notifications xmlns:o="http://soap.sforce.com/2005/09/outbound">'
    b"<o:OrganizationId>00D5g000004ZcXQEA0</o:OrganizationId>"
    b'<o:SessionId i:nil="true"/>'
    b"<o:Notification><o:Id>04l5g0000000001AAA</o:Id>"
    b'<o:sObject i:type="p:Opportunity" xmlns:p="urn:sobject.partner.soap.sforce.com">'
    b"<p:Id>0065g00000AbCdE</p:Id><p:Name>Deal &amp; more</p:Name>"
    b'<p:Description i:nil="true"/>'
    b"<p:Account><p:Name>Acme</p:Name><p:Site i:nil=\"true\"/></p:Account>"
    b"<x:Ignored xmlns:x=\"urn:other\">no</x:Ignored>"
    b"<p:Empty></p:Empty>"
    b"</o:sObject></o:Notification></o:notifications></s:Body></s:Envelope>"
)


def test_names_are_matched_by_namespace_whatever_the_prefixes():
    message = soap.parse(NESTED)
    assert message.organization_id == "00D5g000004ZcXQEA0"
    assert message.has_session_id is False
    [n] = message.notifications
    assert (n.id, n.sobject_type) == ("04l5g0000000001AAA", "Opportunity")
    assert n.fields == {"Id": "0065g00000AbCdE", "Name": "Deal & more",
                        "Account": {"Name": "Acme", "Site": None}, "Empty": ""}


def test_the_stored_notification_parses_back_to_the_same_fields():
    message = soap.parse(soapmsg.won_message([1, 2], pretty=True))
    second = message.notifications[1]
    raw = second.raw
    assert raw.startswith("<") and "}" not in raw.split(">")[0]
    _, notification = parse_notification(raw, message.organization_id)
    assert notification.fields == second.fields
    assert (notification.id, notification.sobject_type) == (second.id, "Opportunity")


@pytest.mark.parametrize(("body", "reason"), [
    (b"<Envelope/>", "not a SOAP 1.1 envelope"),
    (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>',
     "no outbound notifications"),
    (soapmsg.won_message([1]).replace(b"soap.sforce.com/2005/09/outbound", b"example.com/x"),
     "no outbound notifications"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "DTDForbidden"),
    (b"<x>&undefined;</x>", "malformed XML"),
    (soapmsg.won_message([1]).replace(b"xsi:type", b"xsi:other"), "sObject without xsi:type"),
])
def test_what_cannot_be_read_is_refused_with_the_reason(body, reason):
    with pytest.raises(soap.BadMessage, match=reason):
        soap.parse(body)


def test_the_stored_notification_masks_personal_fields_by_name_and_keeps_the_rest():
    account = {"Id": "0015g00000AbCdE", "Name": "Basic Elements Inc",
               "Description": "Bearer bonds; token ring; ops@basic.example",
               "BillingStreet": "12 Elm Street", "BillingCity": "Springfield",
               "BillingPostalCode": "49007", "BillingCountry": "Brazil", "Phone": "555 0100"}
    contact = {"Id": "0035g00000XyZzY", "Name": "Jane Doughty", "FirstName": "Jane",
               "Email": "jane@example.com", "Title": "CFO"}
    message = soap.parse(soapmsg.envelope([
        soapmsg.notification(soapmsg.notification_id(1), "Account", account),
        soapmsg.notification(soapmsg.notification_id(2), "Contact", contact)]))
    stored = [parse_notification(n.raw, message.organization_id)[1].fields
              for n in message.notifications]
    assert stored[0] == {**account, "BillingStreet": MASK, "BillingCity": MASK,
                         "BillingPostalCode": MASK, "Phone": MASK}
    # A contact's Name is a person's name.
    assert stored[1] == {"Id": contact["Id"], "Name": MASK, "FirstName": MASK,
                         "Email": MASK, "Title": "CFO"}
    assert message.notifications[1].fields == contact  # what the steps get is whole
