"""The plain chain's receiver: Flask, ElementTree, one ``.delay()`` per notification.

The end-to-end benchmark serves it with the same gunicorn settings as ours; it answers the
Ack once every notification of the message is on the plain chain's queue.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from flask import Flask, Response, request

from tests.bench.baseline_app import ACK, NS
from tests.bench.plain_chain import ensure_customer

app = Flask(__name__)
TOKEN = os.environ.get("PLAIN_WEBHOOK_TOKEN", "")


@app.post("/salesforce/outbound")
def outbound() -> Response:
    if request.args.get("token") != TOKEN:
        return Response("unauthorized", status=401)
    root = ET.fromstring(request.data)
    for notification in root.iter(f"{{{NS['o']}}}Notification"):
        sobject = notification.find("o:sObject", NS)
        record = {child.tag.split("}")[1]: child.text for child in sobject}
        ensure_customer.delay({"notification_id": notification.findtext("o:Id", namespaces=NS),
                               "record": record})
    return Response(ACK, content_type="text/xml")


@app.get("/")
def ready() -> str:
    return "ok"
