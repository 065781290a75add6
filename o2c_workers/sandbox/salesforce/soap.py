"""Outbound messages as Salesforce writes them, and the acknowledgement it waits for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from o2c_workers.sandbox.world import Record

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
#: The headers of every outbound message.
HEADERS = {"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '""'}


@dataclass(frozen=True)
class Notification:
    """One record change to announce; ``Id`` (04l…) is the receiver's dedupe key."""

    id: str
    sobject: str
    #: Field → value, the fields of the outbound message definition at the time of the change.
    fields: Record


def format_value(value: Any) -> str:
    """A field value as Salesforce's SOAP API writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        text = format(Decimal(str(value)).normalize(), "f")
        return text if "." in text else text + ".0"
    return str(value)


def snapshot(record: Record, fields: tuple[str, ...]) -> Record:
    """The fields a notification carries, ``Id`` first, then by name; nulls left out."""
    names = ["Id", *sorted(f for f in fields if f != "Id")]
    return {name: record[name] for name in names if record.get(name) is not None}


def build_message(notifications: list[Notification], *, org_id: str, action_id: str,
                  session_id: str | None, enterprise_url: str, partner_url: str,
                  pretty: bool = False) -> bytes:
    """The SOAP envelope for 1 to 100 notifications of one outbound message definition."""
    nl, ind = ("\n", " ") if pretty else ("", "")

    def pad(depth: int) -> str:
        return nl + ind * depth

    session = (f"<SessionId>{escape(session_id)}</SessionId>" if session_id
               else '<SessionId xsi:nil="true"/>')
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>', nl,
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}" xmlns:xsd="{XSD_NS}" '
        f'xmlns:xsi="{XSI_NS}">', pad(1), "<soapenv:Body>", pad(2),
        f'<notifications xmlns="{OUTBOUND_NS}">',
        pad(3), f"<OrganizationId>{escape(org_id)}</OrganizationId>",
        pad(3), f"<ActionId>{escape(action_id)}</ActionId>",
        pad(3), session,
        pad(3), f"<EnterpriseUrl>{escape(enterprise_url)}</EnterpriseUrl>",
        pad(3), f"<PartnerUrl>{escape(partner_url)}</PartnerUrl>",
    ]
    for note in notifications:
        parts += [pad(3), "<Notification>", pad(4), f"<Id>{escape(note.id)}</Id>", pad(4),
                  f'<sObject xsi:type="sf:{note.sobject}" xmlns:sf="{SOBJECT_NS}">']
        for name, value in note.fields.items():
            parts += [pad(5), f"<sf:{name}>{escape(format_value(value))}</sf:{name}>"]
        parts += [pad(4), "</sObject>", pad(3), "</Notification>"]
    parts += [pad(2), "</notifications>", pad(1), "</soapenv:Body>", nl, "</soapenv:Envelope>",
              nl]
    return "".join(parts).encode("utf-8")


def is_ack(status: int, body: bytes) -> bool:
    """Whether an answer acknowledges the whole message: 200 and ``<Ack>true</Ack>``."""
    if status != 200:
        return False
    try:
        root = fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        return False
    if root.tag != f"{{{SOAP_ENV_NS}}}Envelope":
        return False
    ack = root.find(f"{{{SOAP_ENV_NS}}}Body/{{{OUTBOUND_NS}}}notificationsResponse/"
                    f"{{{OUTBOUND_NS}}}Ack")
    return ack is not None and (ack.text or "").strip() == "true"
