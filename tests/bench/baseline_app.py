"""The receiver a team would write first: Flask, ElementTree, one ``.delay()`` each.

Used only as the baseline of the ingest benchmark.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from flask import Flask, Response, request

from tasks.customer import ensure_customer

NS = {"o": "http://soap.sforce.com/2005/09/outbound",
      "sf": "urn:sobject.enterprise.soap.sforce.com"}
ACK = ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
       '<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
       "<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>")

flask_app = Flask(__name__)
TOKEN = os.environ.get("O2C_WEBHOOK_TOKEN", "")


@flask_app.post("/salesforce/outbound")
def outbound() -> Response:
    if request.args.get("token") != TOKEN:
        return Response("unauthorized", status=401)
    root = ET.fromstring(request.data)
    for notification in root.iter("{http://soap.sforce.com/2005/09/outbound}Notification"):
        sobject = notification.find("o:sObject", NS)
        record = {child.tag.split("}")[1]: child.text for child in sobject}
        payload = {"trace_key": record.get("Id"),
                   "notification_id": notification.findtext("o:Id", namespaces=NS),
                   "record": record}
        ensure_customer.delay(payload)
    return Response(ACK, content_type="text/xml")


def floor_app(environ: dict[str, object], start_response: object) -> list[bytes]:
    """Reads the body and answers the Ack, nothing else: the server's own cost per request,
    which both receivers pay (the benchmark's floor)."""
    length = int(str(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"].read(length)  # type: ignore[attr-defined]
    body = ACK.encode()
    start_response("200 OK", [("Content-Type", "text/xml"),  # type: ignore[operator]
                              ("Content-Length", str(len(body)))])
    return [body]
