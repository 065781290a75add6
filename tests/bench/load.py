"""A lean closed-loop HTTP load generator: N connections, each sends its next request as
soon as the previous answer arrives. Requests are serialized before the clock starts, so
the generator spends little CPU of its own on a machine it shares with the servers."""

from __future__ import annotations

import itertools
import socket
import statistics
import threading
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


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bool]:
    """Read one response; return its status and whether the server keeps the connection."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the headers")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, keep = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the body")
        rest += chunk
    buffer[:] = rest[length:]
    return status, keep


def run_load(url: str, requests: Sequence[bytes], *, connections: int,
             duration_s: float) -> LoadResult:
    """Send pre-built ``requests`` (each used once) from ``connections`` threads."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    gate = threading.Barrier(connections + 1)
    deadline = [0.0]

    def worker() -> None:
        mine: list[float] = []
        failed = 0
        sock: socket.socket | None = None
        buffer = bytearray()
        gate.wait()
        while time.perf_counter() < deadline[0]:
            index = next(counter)
            if index >= len(requests):
                break
            began = time.perf_counter()
            try:
                if sock is None:
                    sock = socket.create_connection(address, timeout=30)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buffer.clear()
                sock.sendall(requests[index])
                status, keep = _read_response(sock, buffer)
                if not keep:
                    sock.close()
                    sock = None
            except OSError:
                status = 0
                if sock is not None:
                    sock.close()
                sock = None
            if status == 200:
                mine.append((time.perf_counter() - began) * 1000)
            else:
                failed += 1
        if sock is not None:
            sock.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + duration_s
    gate.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return LoadResult(requests=len(latencies), errors=errors[0], seconds=elapsed,
                      latencies_ms=latencies)
