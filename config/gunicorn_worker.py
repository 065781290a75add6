"""The receiver's gunicorn worker: gunicorn's gevent worker that stops without lingering.

gunicorn's gevent worker stops by waiting, up to ``graceful_timeout``, until every connection
it holds is finished, and a kept-alive connection waiting for its next request finishes only
when the client closes it or the keep-alive timeout runs out. Salesforce, load balancers and
the sandbox keep connections open, so every stop took the whole graceful timeout. This worker
shuts, for reading, the connections that sit between two requests when told to stop: their
greenlets end at once (as under gunicorn's gthread worker). A request in progress still gets
its answer, and then its connection is closed. A client whose request was cut short got no answer
and sends it again; for Salesforce that is its usual resend of an unacknowledged message.

This module imports nothing of ours: gunicorn loads it in the arbiter, before gevent patches
the standard library in each worker.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from gunicorn.workers.ggevent import GeventWorker


class ReceiverWorker(GeventWorker):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: set[socket.socket] = set()
        self._answering: set[socket.socket] = set()

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        self._connections.add(client)
        try:
            super().handle(listener, client, addr)
        finally:
            self._connections.discard(client)

    def handle_request(self, listener_name: Any, req: Any, sock: socket.socket,
                       addr: Any) -> None:
        self._answering.add(sock)
        try:
            super().handle_request(listener_name, req, sock, addr)
        finally:
            self._answering.discard(sock)
            if not self.alive:
                # Told to stop while answering: this was the connection's last request.
                _end_reading(sock)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        for sock in self._connections - self._answering:
            _end_reading(sock)


def _end_reading(sock: socket.socket) -> None:
    """Shut ``sock`` for reading: a greenlet waiting on it reads the end and finishes.

    On the operating system's socket (gevent keeps it as ``_sock``): gevent's own
    ``shutdown`` fails the waiting greenlet with "file descriptor was closed in another
    greenlet", which gunicorn logs as a socket error.
    """
    with contextlib.suppress(OSError):
        getattr(sock, "_sock", sock).shutdown(socket.SHUT_RD)
