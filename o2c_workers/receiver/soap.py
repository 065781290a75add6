"""Salesforce outbound messages: parse the SOAP envelope by namespace, answer Ack or fault."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOBJECT_NAMESPACES = frozenset({
    "urn:sobject.enterprise.soap.sforce.com",
    "urn:sobject.partner.soap.sforce.com",
})
#: Salesforce sends 1 to 100 notifications per message.
MAX_NOTIFICATIONS = 100

ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soapenv:Body>"
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    b"<Ack>true</Ack>"
    b"</notificationsResponse>"
    b"</soapenv:Body>"
    b"</soapenv:Envelope>"
)


class BadMessage(ValueError):
    """The body is not an outbound message we can read; answered 400."""


def fault(message: str, *, server: bool = False) -> bytes:
    """A SOAP 1.1 fault; ``server`` faults tell the sender to try again later."""
    code = "soapenv:Server" if server else "soapenv:Client"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        "<soapenv:Body><soapenv:Fault>"
        f"<faultcode>{code}</faultcode><faultstring>{escape(message)}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    ).encode()


@dataclass(frozen=True)
class Notification:
    """One Notification: its Id, the sObject type and the fields as sent (text values)."""

    id: str
    sobject_type: str
    fields: dict[str, Any]
    element: Element = field(repr=False, compare=False)

    @property
    def raw(self) -> str:
        """The Notification element as XML text (for dead letters; built only when asked)."""
        return str(SafeET.tostring(self.element, encoding="unicode"))


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    action_id: str | None
    enterprise_url: str | None
    partner_url: str | None
    has_session_id: bool
    notifications: list[Notification] = field(default_factory=list)


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _text(parent: Element, name: str) -> str | None:
    node = parent.find(_q(OUTBOUND, name))
    if node is None or node.get(_q(XSI, "nil")) == "true":
        return None
    return (node.text or "").strip() or None


def _local(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return None, tag


def _field_value(node: Element) -> Any:
    if node.get(_q(XSI, "nil")) == "true":
        return None
    children = list(node)
    if children:
        return {_local(child.tag)[1]: _field_value(child) for child in children}
    return node.text if node.text is not None else ""


def _sobject(node: Element) -> tuple[str, dict[str, Any]]:
    declared = node.get(_q(XSI, "type")) or ""
    # The xsi:type value is a QName ("sf:Opportunity"); its local part is the type.
    sobject_type = declared.rpartition(":")[2]
    if not sobject_type:
        raise BadMessage("sObject without xsi:type")
    fields: dict[str, Any] = {}
    for child in node:
        ns, name = _local(child.tag)
        if ns not in SOBJECT_NAMESPACES:
            continue
        value = _field_value(child)
        if value is not None:
            fields[name] = value
    return sobject_type, fields


def parse(body: bytes) -> OutboundMessage:
    """Parse an outbound message; DTDs, entities and malformed XML raise ``BadMessage``."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
    except DefusedXmlException as exc:
        raise BadMessage(f"refused XML construct: {type(exc).__name__}") from None
    except ParseError as exc:
        raise BadMessage(f"malformed XML: {exc}") from None
    if root.tag != _q(SOAP_ENV, "Envelope"):
        raise BadMessage("not a SOAP 1.1 envelope")
    notifications = root.find(f"{_q(SOAP_ENV, 'Body')}/{_q(OUTBOUND, 'notifications')}")
    if notifications is None:
        raise BadMessage("no outbound notifications element in the SOAP body")
    org = _text(notifications, "OrganizationId")
    if not org:
        raise BadMessage("OrganizationId is missing")
    session = notifications.find(_q(OUTBOUND, "SessionId"))
    message = OutboundMessage(
        organization_id=org,
        action_id=_text(notifications, "ActionId"),
        enterprise_url=_text(notifications, "EnterpriseUrl"),
        partner_url=_text(notifications, "PartnerUrl"),
        has_session_id=session is not None and session.get(_q(XSI, "nil")) != "true"
        and bool((session.text or "").strip()),
    )
    items = notifications.findall(_q(OUTBOUND, "Notification"))
    if not items:
        raise BadMessage("the message holds no Notification")
    if len(items) > MAX_NOTIFICATIONS:
        raise BadMessage(f"{len(items)} notifications; Salesforce sends at most 100")
    for item in items:
        notification_id = _text(item, "Id")
        if not notification_id:
            raise BadMessage("a Notification without Id")
        node = item.find(_q(OUTBOUND, "sObject"))
        if node is None:
            raise BadMessage(f"Notification {notification_id} has no sObject")
        sobject_type, fields = _sobject(node)
        message.notifications.append(
            Notification(id=notification_id, sobject_type=sobject_type, fields=fields,
                         element=item)
        )
    return message
