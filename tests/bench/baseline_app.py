"""The receiver a team would write first: Flask, ElementTree, one ``send_task`` each.

Used only as the baseline of the ingest benchmark.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from flask import Flask, Response, request

from o2c_workers import app as celery_app

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
        celery_app.send_task("o2c.customer.ensure_customer", args=[payload], queue="customer")
    return Response(ACK, content_type="text/xml")
