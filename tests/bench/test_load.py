"""The benchmarks' load generator counts what the server answered, and nothing else."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.bench.load import build_requests, run_load


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, keep_alive: bool) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.keep_alive = keep_alive
        self.bodies: list[bytes] = []
        self.connections = 0
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.bodies.append(body)
        answer = b"no" if body.startswith(b"fail") else b"ok" * 40_000
        self.send_response(503 if body.startswith(b"fail") else 200)
        self.send_header("Content-Length", str(len(answer)))
        if not self.server.keep_alive:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(params=[True, False], ids=["keep-alive", "close"])
def server(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    recorder = Recorder(keep_alive=request.param)
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    yield recorder
    recorder.shutdown()
    recorder.server_close()


def test_every_request_is_sent_once_and_every_answer_counted(server):
    url = f"http://127.0.0.1:{server.server_address[1]}/post?x=1"
    bodies = [(b"fail" if n % 5 == 0 else b"ok") + str(n).encode() * 30_000
              for n in range(40)]
    result = run_load(url, build_requests(url, bodies), connections=3, duration_s=30)
    assert sorted(server.bodies) == sorted(bodies)
    assert (result.requests, result.errors) == (32, 8)
    assert len(result.latencies_ms) == 32 and result.p50 > 0
    assert server.connections == (3 if server.keep_alive else 40)


def test_the_run_stops_at_its_deadline(server):
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    result = run_load(url, build_requests(url, [b"ok"] * 1_000_000), connections=2,
                      duration_s=0.3)
    assert 0 < result.requests < 1_000_000
    assert result.seconds < 5
