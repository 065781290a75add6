"""TCP proxies on loopback for fault tests: one cuts a connection the moment a chosen reply
passes (Redis), one cuts, refuses or freezes every connection on demand (RabbitMQ)."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class _Forwarder:
    """Forwards loopback connections to ``upstream_port``, a thread per direction; the
    subclasses decide which connections to take and what becomes of each chunk."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _admit(self) -> bool:
        """Whether to forward a new connection (else it is closed at once)."""
        return True

    def _passes(self, data: bytes, *, reply: bool) -> bool:
        """Whether ``data`` goes on (``reply``: from the server); False cuts the connection."""
        return True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._admit():
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if not self._passes(data, reply=replies):
                    break
                sink.sendall(data)
        for sock in (source, sink):
            _shut(sock)

    def _close_all(self) -> None:
        sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class CuttingProxy(_Forwarder):
    """Forwards loopback connections to ``upstream_port``; the first server reply that
    contains ``trigger`` is never delivered: both sides of its connection are closed."""

    def __init__(self, upstream_port: int, trigger: bytes) -> None:
        self.trigger = trigger
        self.cut = threading.Event()
        super().__init__(upstream_port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _passes(self, data: bytes, *, reply: bool) -> bool:
        if reply and not self.cut.is_set() and self.trigger in data:
            self.cut.set()
            return False
        return True

    def close(self) -> None:
        self._listener.close()
        self._close_all()


class TcpProxy(_Forwarder):
    """Forwards loopback connections to ``upstream_port`` until told otherwise: ``cut()``
    closes every connection and refuses new ones until ``restore()``; ``freeze()`` keeps
    connections open but holds every server byte back until ``restore()`` (a broker that
    stops answering, or answers late)."""

    def __init__(self, upstream_port: int) -> None:
        self.refusing = threading.Event()
        self.flowing = threading.Event()
        self.flowing.set()
        #: Connections accepted and forwarded so far.
        self.accepted = 0
        super().__init__(upstream_port)

    def _admit(self) -> bool:
        if self.refusing.is_set():
            return False
        self.accepted += 1
        return True

    def _passes(self, data: bytes, *, reply: bool) -> bool:
        if reply:
            self.flowing.wait()
        return True

    def cut(self) -> None:
        self.refusing.set()
        self._close_all()

    def freeze(self) -> None:
        self.flowing.clear()

    def restore(self) -> None:
        self.refusing.clear()
        self.flowing.set()

    def close(self) -> None:
        self.cut()
        self.flowing.set()
        self._listener.close()
