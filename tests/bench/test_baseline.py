"""The ingest benchmark's baseline really enqueues, so the comparison is like for like;
its floor app does nothing but read and answer."""

from __future__ import annotations

import pytest
import requests

from tests import soapmsg
from tests.bench.ingest import TOKEN, start_gunicorn
from tests.helpers import queued


@pytest.mark.slow
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


@pytest.mark.slow
def test_the_floor_app_answers_the_ack_on_a_kept_alive_connection_and_enqueues_nothing(
        redis_url, redis_client):
    server = start_gunicorn("floor", "tests.bench.baseline_app:floor_app", redis_url,
                            workers=1)
    body = soapmsg.won_message([1])
    try:
        with requests.Session() as session:
            answers = [session.post(f"{server.url}/salesforce/outbound", data=body, timeout=10)
                       for _ in range(2)]  # the second on the same kept-alive connection
    finally:
        server.stop()
    assert [a.status_code for a in answers] == [200, 200]
    assert all(a.content.endswith(b"</soapenv:Envelope>") and b"<Ack>true</Ack>" in a.content
               for a in answers)
    assert queued(redis_client, "customer") == []
