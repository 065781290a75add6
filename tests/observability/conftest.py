"""A local Sentry that keeps every envelope the SDK sends, and Prometheus text helpers."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import o2c_factory  # noqa: F401 - the fleet fixture

PUBLIC_KEY = "0b5e7ab1e0b5e7ab1e0b5e7ab1e0b5e7"


@dataclass
class Envelope:
    raw: bytes
    headers: dict[str, Any]
    items: list[tuple[dict[str, Any], Any]]

    def events(self) -> list[dict[str, Any]]:
        return [payload for header, payload in self.items
                if header.get("type") == "event" and isinstance(payload, dict)]


def parse_envelope(raw: bytes) -> Envelope:
    """Sentry's envelope format: a header line, then item header lines and payloads."""
    header_line, _, rest = raw.partition(b"\n")
    items: list[tuple[dict[str, Any], Any]] = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item = json.loads(item_line)
        if "length" in item:
            body, rest = rest[:item["length"]], rest[item["length"]:].lstrip(b"\n")
        else:
            body, _, rest = rest.partition(b"\n")
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = body
        items.append((item, payload))
    return Envelope(raw, json.loads(header_line), items)


@dataclass
class SentrySink:
    """Everything a real DSN pointing here delivers."""

    port: int = 0
    envelopes: list[Envelope] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def dsn(self) -> str:
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self.port}/42"

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for envelope in self.envelopes for event in envelope.events()]

    def raw(self) -> bytes:
        with self._lock:
            return b"\n".join(envelope.raw for envelope in self.envelopes)

    def add(self, body: bytes, encoding: str) -> None:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        with self._lock:
            self.envelopes.append(parse_envelope(body))


@pytest.fixture
def sentry_sink() -> Iterator[SentrySink]:
    sink = SentrySink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            sink.add(body, self.headers.get("Content-Encoding", ""))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sink
    server.shutdown()
    server.server_close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels (parsed by prometheus-client)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    """The sum of ``name`` over the samples whose labels include ``labels``."""
    return sum(v for (n, lbls), v in values.items()
               if n == name and set(labels.items()) <= set(lbls))
