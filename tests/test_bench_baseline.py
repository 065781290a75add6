"""The ingest benchmark's baseline really enqueues, so the comparison is like for like."""

from __future__ import annotations

import requests

from tests import soapmsg
from tests.bench.ingest import TOKEN, start_gunicorn
from tests.helpers import queued


def test_the_baseline_puts_one_task_per_notification_on_the_customer_queue(redis_url,
                                                                           redis_client):
    server = start_gunicorn("baseline", "tests.bench.baseline_app:flask_app", redis_url,
                            workers=1)
    try:
        response = requests.post(f"{server.url}/salesforce/outbound",
                                 params={"token": TOKEN},
                                 data=soapmsg.won_message([1, 2]), timeout=10)
    finally:
        server.stop()
    assert response.status_code == 200 and b"<Ack>true</Ack>" in response.content
    messages = queued(redis_client, "customer")
    assert [m["headers"]["task"] for m in messages] == ["o2c.customer.ensure_customer"] * 2
    assert sorted(m["args"][0]["notification_id"] for m in messages) == [
        soapmsg.notification_id(1), soapmsg.notification_id(2)]
