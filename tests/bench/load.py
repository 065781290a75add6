"""A lean closed-loop HTTP load generator: N connections, each sends its next request as
soon as the previous answer arrives. Requests are serialized before the clock starts and
one thread drives every connection, so the generator spends little CPU of its own on a
machine it shares with the servers."""

from __future__ import annotations

import selectors
import socket
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, pct: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
        return ordered[index]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return self.percentile(99)


def build_requests(url: str, bodies: Sequence[bytes]) -> list[bytes]:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    head = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            'Content-Type: text/xml; charset=UTF-8\r\nSOAPAction: ""\r\n')
    return [(head + f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in bodies]


def _parse_response(buffer: bytearray) -> tuple[int, bool, int] | None:
    """Status, keep-alive and length of the first whole response in ``buffer``, if any."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buffer[:end]).split(b"\r\n")
    status = int(lines[0].split()[1])
    length, keep = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    total = end + 4 + length
    return (status, keep, total) if len(buffer) >= total else None


class _Connection:
    """One client connection: sends a request, reads its answer, then the next."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sock: socket.socket | None = None
        self.mask = 0
        self.out = memoryview(b"")
        self.buffer = bytearray()
        self.began = 0.0

    def open(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.sock, self.buffer = sock, bytearray()
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def run_load(url: str, requests: Sequence[bytes], *, connections: int,
             duration_s: float) -> LoadResult:
    """Send pre-built ``requests`` (each used once) over ``connections`` connections.

    One thread drives every connection through ``selectors``: a thread per connection
    would spend more CPU handing the GIL around than sending.
    """
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    selector = selectors.DefaultSelector()
    latencies: list[float] = []
    errors = 0
    next_request = iter(range(len(requests)))
    clients = [_Connection(address) for _ in range(connections)]

    def watch(client: _Connection, mask: int) -> None:
        assert client.sock is not None
        if client.mask == 0:
            selector.register(client.sock, mask, client)
        elif client.mask != mask:
            selector.modify(client.sock, mask, client)
        client.mask = mask

    def retire(client: _Connection) -> None:
        if client.sock is not None and client.mask:
            selector.unregister(client.sock)
        client.mask = 0
        client.close()

    def start(client: _Connection) -> None:
        """Send the next request, or retire the connection when time or requests run out."""
        index = next(next_request, None)
        if index is None or time.perf_counter() >= deadline:
            retire(client)
            return
        sock = client.sock or client.open()
        client.out = memoryview(requests[index])
        client.began = time.perf_counter()
        try:
            client.out = client.out[sock.send(client.out):]
        except BlockingIOError:
            pass
        except OSError:
            fail(client)
            return
        # Most requests go out whole at once; only the rest waits for the socket.
        watch(client, selectors.EVENT_WRITE if client.out else selectors.EVENT_READ)

    def fail(client: _Connection) -> None:
        nonlocal errors
        errors += 1
        retire(client)
        start(client)

    began = time.perf_counter()
    deadline = began + duration_s
    for client in clients:
        start(client)
    while selector.get_map():
        for key, events in selector.select(timeout=1.0):
            client = key.data
            sock = client.sock
            assert sock is not None
            try:
                if events & selectors.EVENT_WRITE:
                    client.out = client.out[sock.send(client.out):]
                    if not client.out:
                        watch(client, selectors.EVENT_READ)
                    continue
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                fail(client)
                continue
            if not chunk:
                fail(client)
                continue
            client.buffer += chunk
            answer = _parse_response(client.buffer)
            if answer is None:
                continue
            status, keep, length = answer
            del client.buffer[:length]
            if status == 200:
                latencies.append((time.perf_counter() - client.began) * 1000)
            else:
                errors += 1
            if not keep:
                retire(client)
            start(client)
    elapsed = time.perf_counter() - began
    selector.close()
    return LoadResult(requests=len(latencies), errors=errors, seconds=elapsed,
                      latencies_ms=latencies)
