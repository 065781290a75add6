"""Build Salesforce outbound messages for tests, the way Salesforce writes them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

ORG_ID = "00D5g000004ZcXQEA0"


def notification(notification_id: str, sobject_type: str, fields: dict[str, Any], *,
                 sf_prefix: str = "sf") -> str:
    body = "".join(
        f"<{sf_prefix}:{name}>{escape(str(value))}</{sf_prefix}:{name}>"
        for name, value in fields.items() if value is not None
    )
    return (
        f"<Notification><Id>{notification_id}</Id>"
        f'<sObject xsi:type="{sf_prefix}:{sobject_type}" '
        f'xmlns:{sf_prefix}="urn:sobject.enterprise.soap.sforce.com">{body}</sObject>'
        "</Notification>"
    )


def envelope(notifications: Sequence[str], *, org_id: str = ORG_ID, pretty: bool = False,
             env_prefix: str = "soapenv", session_id: str | None = None) -> bytes:
    session = (f"<SessionId>{session_id}</SessionId>" if session_id
               else '<SessionId xsi:nil="true"/>')
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<{env_prefix}:Envelope xmlns:{env_prefix}="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
        f"<{env_prefix}:Body>",
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">',
        f"<OrganizationId>{org_id}</OrganizationId>",
        "<ActionId>04k5g000000KzQzAAK</ActionId>",
        session,
        f"<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/60.0/{org_id[:15]}"
        "</EnterpriseUrl>",
        f"<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/60.0/{org_id[:15]}"
        "</PartnerUrl>",
        *notifications,
        "</notifications>",
        f"</{env_prefix}:Body>",
        f"</{env_prefix}:Envelope>",
    ]
    return ("\n  ".join(parts) if pretty else "".join(parts)).encode()


def opportunity(index: int, *, stage: str = "Closed Won", **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "Id": f"0065g00000{index:05d}",
        "AccountId": "0015g00000AbCdE",
        "Name": f"Deal {index}",
        "StageName": stage,
        "Amount": "45000.0",
        "CurrencyIsoCode": "USD",
        "CloseDate": "2026-11-20",
        "IsWon": "true",
        "LastModifiedDate": "2026-11-20T13:40:22.000Z",
    }
    fields.update(extra)
    return fields


def notification_id(index: int) -> str:
    return f"04l5g00000{index:05d}"


def won_message(indexes: Sequence[int], **kw: Any) -> bytes:
    return envelope([notification(notification_id(i), "Opportunity", opportunity(i))
                     for i in indexes], **kw)
