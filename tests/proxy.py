"""A TCP proxy in front of Redis that cuts a connection the moment a chosen reply passes."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class CuttingProxy:
    """Forwards loopback connections to ``upstream_port``; the first server reply that
    contains ``trigger`` is never delivered: both sides of its connection are closed."""

    def __init__(self, upstream_port: int, trigger: bytes) -> None:
        self.upstream_port = upstream_port
        self.trigger = trigger
        self.cut = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if replies and not self.cut.is_set() and self.trigger in data:
                    self.cut.set()
                    break
                sink.sendall(data)
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            with suppress(OSError):
                sock.close()


class TcpProxy:
    """Forwards loopback connections to ``upstream_port`` until told otherwise: ``cut()``
    closes every connection and refuses new ones until ``restore()``; ``freeze()`` keeps
    connections open but holds every server byte back until ``restore()`` (a broker that
    stops answering, or answers late)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.refusing = threading.Event()
        self.flowing = threading.Event()
        self.flowing.set()
        #: Connections accepted and forwarded so far.
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.accepted += 1
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if replies:
                    self.flowing.wait()
                sink.sendall(data)
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self) -> None:
        self.refusing.set()
        sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def freeze(self) -> None:
        self.flowing.clear()

    def restore(self) -> None:
        self.refusing.clear()
        self.flowing.set()

    def close(self) -> None:
        self.cut()
        self.flowing.set()
        self._listener.close()
