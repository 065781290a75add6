"""The simulators' HTTP server: a client that never finishes its TLS handshake holds up
neither the other clients nor the server's stop."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import requests

from o2c_workers.sandbox.http import serve
from o2c_workers.sandbox.salesforce.tls import make_certificates


def _hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def test_a_silent_tls_client_blocks_neither_other_clients_nor_stop(tmp_path: Path) -> None:
    files = make_certificates(tmp_path / "tls")
    running = serve(_hello, ssl_context=files.server_context(), name="tls-test")
    silent = socket.create_connection((running.host, running.port))  # says nothing
    try:
        time.sleep(0.3)  # the server has accepted it
        answer = requests.get(f"{running.url}/", verify=files.ca_file, timeout=3)
        assert answer.text == "ok"
        stopped = threading.Thread(target=running.stop, daemon=True)
        started = time.monotonic()
        stopped.start()
        stopped.join(timeout=10)
        assert not stopped.is_alive(), "stop() hung behind a silent client"
        assert time.monotonic() - started < 6
    finally:
        silent.close()
