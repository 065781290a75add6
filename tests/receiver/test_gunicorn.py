"""The receiver end to end under a real gunicorn, against real Redis."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis
import requests

from o2c_workers.dev.redis_runtime import free_port, start_private
from o2c_workers.receiver.soap import ACK
from tests import soapmsg
from tests.helpers import queued
from tests.receiver.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]


class Gunicorn:
    def __init__(self, redis_url: str, *, workers: int = 2, args: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, O2C_REDIS_URL=redis_url, O2C_WEBHOOK_TOKEN=TOKEN,
                   O2C_SALESFORCE_ORG_IDS=soapmsg.ORG_ID, O2C_LOG_LEVEL="INFO", **(env or {}))
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn",
             "o2c_workers.wsgi:create_app()", "-b", f"127.0.0.1:{self.port}", "-w",
             str(workers), "--access-logfile", "-", *args],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not start: {self.stop()}")

    def post(self, body: bytes, *, token: str = TOKEN) -> requests.Response:
        return requests.post(f"{self.url}/salesforce/outbound", params={"token": token},
                             data=body, timeout=10,
                             headers={"Content-Type": "text/xml; charset=UTF-8",
                                      "SOAPAction": '""'})

    def stop(self) -> str:
        """Stop the server and return everything it printed."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.seek(0)
        output = self.log.read()
        self.log.close()
        return output


@pytest.fixture
def gunicorn(redis_url: str, redis_client: redis.Redis) -> Iterator[Gunicorn]:
    server = Gunicorn(redis_url)
    yield server
    server.stop()


def test_ack_over_http(gunicorn, redis_client):
    response = gunicorn.post(soapmsg.won_message(range(100)))
    assert response.status_code == 200
    assert response.content == ACK
    assert response.headers["Content-Type"].startswith("text/xml")
    assert redis_client.llen("customer") == 100


def test_same_message_from_two_connections_at_once_is_enqueued_once(gunicorn, redis_client):
    body = soapmsg.won_message(range(50))
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def send() -> None:
        barrier.wait()
        statuses.append(gunicorn.post(body).status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4
    assert redis_client.llen("customer") == 50


@pytest.mark.slow
def test_the_token_never_reaches_the_logs(redis_url, redis_client):
    server = Gunicorn(redis_url)
    try:
        assert server.post(soapmsg.won_message([1])).status_code == 200
        assert server.post(soapmsg.won_message([2]), token="wrong-" + TOKEN).status_code == 401
    finally:
        output = server.stop()
    assert "POST /salesforce/outbound HTTP/1.1\" 200" in output
    assert TOKEN not in output
    logged = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert {"trace_key": "0065g0000000001AAA", "outcome": "enqueued"}.items() <= next(
        entry for entry in logged if entry.get("notification_id")).items()


def test_bad_token_and_oversize_over_http(gunicorn, redis_client):
    assert gunicorn.post(soapmsg.won_message([1]), token="nope").status_code == 401
    response = requests.post(f"{gunicorn.url}/salesforce/outbound", params={"token": TOKEN},
                             data=b"x" * (2 * 1024 * 1024), timeout=10)
    assert response.status_code == 413
    assert b"Fault" in response.content
    assert redis_client.llen("customer") == 0


@pytest.mark.slow
def test_redis_down_then_back_loses_nothing(tmp_path):
    """Stop Redis mid-run: 503 and no Ack; once it is back, the resend gets through once."""
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    handle = start_private(port=port, workdir=data, persistent=True)
    server = Gunicorn(handle.url)
    try:
        first = soapmsg.won_message([1, 2])
        second = soapmsg.won_message([3, 4])
        assert server.post(first).status_code == 200
        handle.stop(keep_data=True)
        response = server.post(second)
        assert response.status_code == 503
        assert b"<Ack>" not in response.content
        assert b"soapenv:Server" in response.content
        handle = start_private(port=port, workdir=data, persistent=True)
        # Salesforce resends the unacknowledged message, and sometimes the acked one too.
        assert server.post(second).status_code == 200
        assert server.post(first).status_code == 200
        client = redis.Redis.from_url(handle.url)
        ids = sorted(m["args"][0]["notification_id"] for m in queued(client, "customer"))
        assert ids == [soapmsg.notification_id(i) for i in (1, 2, 3, 4)]
        client.close()
    finally:
        server.stop()
        handle.stop()


@pytest.mark.slow
def test_a_stop_does_not_wait_for_idle_keep_alive_connections(redis_url, redis_client):
    """Salesforce and load balancers keep connections open; a stop must not wait them out."""
    server = Gunicorn(redis_url, workers=1)
    with requests.Session() as session:
        response = session.post(f"{server.url}/salesforce/outbound", params={"token": TOKEN},
                                data=soapmsg.won_message([1]), timeout=10)
        assert response.status_code == 200
        assert response.headers.get("Connection", "").lower() != "close"
        # The session now holds an idle kept-alive connection.
        began = time.monotonic()
        output = server.stop()
        stopped_in = time.monotonic() - began
    assert server.process.returncode == 0, output
    assert stopped_in < 5, f"took {stopped_in:.1f} s (graceful timeout is 20 s)"
    assert "graceful timeout" not in output.lower()
    assert "[ERROR]" not in output


@pytest.mark.slow
def test_a_request_in_progress_at_a_stop_still_gets_its_ack(redis_url, redis_client):
    server = Gunicorn(redis_url, workers=1)
    body = soapmsg.won_message([7])
    head = (f"POST /salesforce/outbound?token={TOKEN} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head + body[:100])
            time.sleep(0.5)  # the worker is now reading this request's body
            server.process.terminate()
            time.sleep(0.5)
            sock.sendall(body[100:])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    finally:
        output = server.stop()
    assert answer.startswith(b"HTTP/1.1 200"), output
    assert ACK in answer  # and then the server closed the connection: recv saw its end
    assert len(queued(redis_client, "customer")) == 1


def raw_post(port: int, body: bytes) -> socket.socket:
    """Send one outbound message on a new connection, read its whole answer, and return the
    still-open connection (the answer kept it alive)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall((f"POST /salesforce/outbound?token={TOKEN} HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                 + body)
    answer = b""
    while ACK not in answer:
        chunk = sock.recv(65536)
        assert chunk, answer
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    return sock


def seconds_until_closed(sock: socket.socket) -> float:
    began = time.monotonic()
    with sock:
        assert sock.recv(65536) == b""
    return time.monotonic() - began


@pytest.mark.slow
def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive(redis_url, redis_client):
    server = Gunicorn(redis_url, workers=1, args=["--keep-alive", "1"])
    try:
        sock = raw_post(server.port, soapmsg.won_message([1]))
        assert 0.5 < seconds_until_closed(sock) < 5
    finally:
        server.stop()


@pytest.mark.slow
def test_keepalive_zero_closes_each_connection_after_its_answer(redis_url, redis_client):
    server = Gunicorn(redis_url, workers=1, args=["--keep-alive", "0"])
    try:
        sock = raw_post(server.port, soapmsg.won_message([1]))
        assert seconds_until_closed(sock) < 0.5
    finally:
        server.stop()
    assert redis_client.llen("customer") == 1


@pytest.mark.slow
def test_max_requests_restarts_the_worker(redis_url, redis_client):
    server = Gunicorn(redis_url, workers=1, args=["--max-requests", "2"])
    try:
        for n in (1, 2, 3):  # the third is answered by the worker that replaced the first
            assert server.post(soapmsg.won_message([n])).status_code == 200
    finally:
        output = server.stop()
    # Its health check and first message made the first worker's two requests.
    assert "Autorestarting worker after current request" in output, output
    assert output.count("Booting worker") >= 2, output
    assert redis_client.llen("customer") == 3


@pytest.mark.slow
def test_a_malformed_request_is_refused_and_its_token_never_logged(redis_url, redis_client):
    server = Gunicorn(redis_url, workers=1)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            # gevent's own message for this quotes the request line.
            sock.sendall(f"POST /salesforce/outbound?token={TOKEN} HTTP/7.1\r\n"
                         "Host: x\r\n\r\n".encode())
            answer = sock.recv(65536)
    finally:
        output = server.stop()
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert "Refused a malformed HTTP request from 127.0.0.1: " in output, output
    assert TOKEN not in output


@pytest.mark.slow
def test_a_request_sent_on_a_kept_alive_connection_at_a_stop_is_answered(redis_url,
                                                                         redis_client):
    """Promise 1 at a stop: the next request on a kept-alive connection, already sent when
    SIGTERM arrives, is answered (and enqueued) before the connection closes."""
    server = Gunicorn(redis_url, workers=1)
    body = soapmsg.won_message([9])
    try:
        sock = raw_post(server.port, soapmsg.won_message([8]))  # now idle, kept alive
        with sock:
            sock.sendall((f"POST /salesforce/outbound?token={TOKEN} HTTP/1.1\r\nHost: x\r\n"
                          f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n")
                         .encode() + body)
            server.process.terminate()
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    finally:
        output = server.stop()
    assert answer.startswith(b"HTTP/1.1 200"), output
    assert ACK in answer
    assert sorted(m["args"][0]["notification_id"] for m in queued(redis_client, "customer")) \
        == [soapmsg.notification_id(8), soapmsg.notification_id(9)]
