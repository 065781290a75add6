"""Salesforce outbound messages: parse the SOAP envelope by namespace, answer Ack or fault."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast
from xml.etree.ElementTree import Element, ParseError, TreeBuilder
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from o2c_workers.errors import O2CError
from o2c_workers.redact import MASK, is_masked_key

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOBJECT_NAMESPACES = frozenset({
    "urn:sobject.enterprise.soap.sforce.com",
    "urn:sobject.partner.soap.sforce.com",
})
#: Salesforce sends 1 to 100 notifications per message.
MAX_NOTIFICATIONS = 100
#: How deep elements may nest. An outbound message nests 7 levels at most (Envelope, Body,
#: notifications, Notification, sObject, a field, the part of a compound field); deeper
#: XML is refused with a 400 before anything walks it (a walk by recursion would fail).
MAX_DEPTH = 100
#: sObjects whose ``Name`` is a person's name, masked in a stored notification.
PERSON_SOBJECTS = frozenset({"Contact", "Lead"})

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


class BadMessage(O2CError, ValueError):
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
        """The Notification element as XML text, for a dead letter (built only when asked):
        exact, but for the sObject's secret and personal fields, masked by name."""
        tree = _clark_tree(self.element)
        _mask_fields(tree, personal_name=self.sobject_type in PERSON_SOBJECTS)
        return str(SafeET.tostring(tree, encoding="unicode"))


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    action_id: str | None
    enterprise_url: str | None
    partner_url: str | None
    has_session_id: bool
    notifications: list[Notification] = field(default_factory=list)


# The parser below hands expat's names to the tree as expat writes them, "uri}local";
# these are the names this module looks for.
def _q(ns: str, name: str) -> str:
    return f"{ns}}}{name}"


ENVELOPE = _q(SOAP_ENV, "Envelope")
BODY = _q(SOAP_ENV, "Body")
NOTIFICATIONS = _q(OUTBOUND, "notifications")
NOTIFICATION = _q(OUTBOUND, "Notification")
SOBJECT = _q(OUTBOUND, "sObject")
SESSION_ID = _q(OUTBOUND, "SessionId")
NIL = _q(XSI, "nil")
TYPE = _q(XSI, "type")


def _fromstring(body: bytes) -> Element:
    """Parse with defusedxml's guards, building the tree at C speed.

    ``DefusedXMLParser`` is the pure-Python ElementTree parser with handlers that refuse
    DTDs, entity declarations and external references. Its element callbacks rewrite every
    name in Python before handing it to the (C) tree builder, which costs three times as
    much as expat itself. Here the guards stay as defusedxml installs them, and expat's
    element and text events go straight to the C ``TreeBuilder``, so names keep expat's
    ``uri}local`` form.
    """
    builder = TreeBuilder()
    parser = SafeET.DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True,
                                     forbid_external=True)
    expat = parser.parser
    expat.ordered_attributes = False
    expat.StartElementHandler = builder.start
    expat.EndElementHandler = builder.end
    expat.CharacterDataHandler = builder.data
    parser.feed(body)
    return cast(Element, parser.close())


def _clark(name: str) -> str:
    return "{" + name if "}" in name and not name.startswith("{") else name


def _clark_tree(element: Element) -> Element:
    """A copy of ``element`` with ElementTree's ``{uri}local`` names, for serializing."""
    copy = Element(_clark(element.tag), {_clark(k): v for k, v in element.attrib.items()})
    copy.text, copy.tail = element.text, element.tail
    copy.extend(_clark_tree(child) for child in element)
    return copy


def _mask_fields(notification: Element, *, personal_name: bool) -> None:
    """Mask, in place, the sObject fields named secret or personal (``o2c_workers.redact``)
    and, when ``personal_name``, the sObject's own ``Name``."""
    for sobject in notification:
        if sobject.tag != "{" + SOBJECT:
            continue
        named = [node for node in sobject if personal_name and node.tag.endswith("}Name")]
        for node in [*named, *sobject.iter()]:
            ns, _, name = node.tag[1:].rpartition("}")
            if ns in SOBJECT_NAMESPACES and (node in named or is_masked_key(name)) \
                    and (len(node) or (node.text or "").strip()):
                node[:] = []
                node.text = MASK


def check_depth(root: Element) -> None:
    """Refuse a tree that nests deeper than ``MAX_DEPTH``, walking it level by level."""
    level, depth = [root], 1
    while level:
        if depth > MAX_DEPTH:
            raise BadMessage(f"elements nest more than {MAX_DEPTH} levels deep")
        level = [child for node in level for child in node]
        depth += 1


def _child(parent: Element, tag: str) -> Element | None:
    for child in parent:
        if child.tag == tag:
            return child
    return None


def _text(parent: Element, name: str) -> str | None:
    node = _child(parent, _q(OUTBOUND, name))
    if node is None or node.get(NIL) == "true":
        return None
    return (node.text or "").strip() or None


def _local(tag: str) -> tuple[str | None, str]:
    ns, sep, name = tag.rpartition("}")
    return (ns, name) if sep else (None, tag)


def _field_value(node: Element) -> Any:
    if node.get(NIL) == "true":
        return None
    if len(node):
        return {_local(child.tag)[1]: _field_value(child) for child in node}
    return node.text if node.text is not None else ""


def _sobject(node: Element) -> tuple[str, dict[str, Any]]:
    declared = node.get(TYPE) or ""
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
    """Parse an outbound message; DTDs, entities, malformed XML and elements nested deeper
    than ``MAX_DEPTH`` raise ``BadMessage``."""
    try:
        root = _fromstring(body)
    except DefusedXmlException as exc:
        raise BadMessage(f"refused XML construct: {type(exc).__name__}") from None
    except ParseError as exc:
        raise BadMessage(f"malformed XML: {exc}") from None
    check_depth(root)
    if root.tag != ENVELOPE:
        raise BadMessage("not a SOAP 1.1 envelope")
    soap_body = _child(root, BODY)
    notifications = _child(soap_body, NOTIFICATIONS) if soap_body is not None else None
    if notifications is None:
        raise BadMessage("no outbound notifications element in the SOAP body")
    org = _text(notifications, "OrganizationId")
    if not org:
        raise BadMessage("OrganizationId is missing")
    session = _child(notifications, SESSION_ID)
    message = OutboundMessage(
        organization_id=org,
        action_id=_text(notifications, "ActionId"),
        enterprise_url=_text(notifications, "EnterpriseUrl"),
        partner_url=_text(notifications, "PartnerUrl"),
        has_session_id=session is not None and session.get(NIL) != "true"
        and bool((session.text or "").strip()),
    )
    items = [child for child in notifications if child.tag == NOTIFICATION]
    if not items:
        raise BadMessage("the message holds no Notification")
    if len(items) > MAX_NOTIFICATIONS:
        raise BadMessage(f"{len(items)} notifications; Salesforce sends at most 100")
    for item in items:
        notification_id = _text(item, "Id")
        if not notification_id:
            raise BadMessage("a Notification without Id")
        node = _child(item, SOBJECT)
        if node is None:
            raise BadMessage(f"Notification {notification_id} has no sObject")
        sobject_type, fields = _sobject(node)
        message.notifications.append(
            Notification(id=notification_id, sobject_type=sobject_type, fields=fields,
                         element=item)
        )
    return message
