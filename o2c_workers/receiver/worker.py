"""The receiver's gunicorn worker: gevent's WSGI server, stopping without lingering.

It is gunicorn's ``gevent_pywsgi`` worker (gevent's own HTTP/1.1 server, ``gevent.pywsgi``,
on gunicorn's process management) with what gunicorn leaves out for that worker:

- **Idle connections time out.** A connection waiting for its next request line is closed
  after ``keepalive`` seconds (``keepalive = 0`` closes it after each answer), as gunicorn's
  own workers do; gevent's server would wait for ever.
- **A stop does not wait for idle connections.** gunicorn stops a worker by waiting, up to
  ``graceful_timeout``, until every connection it holds is finished, and a kept-alive
  connection finishes only when the client closes it. Salesforce, load balancers and the
  sandbox keep connections open, so every stop took the whole graceful timeout. When told to
  stop (or when ``max_requests`` is reached), this worker stops accepting at once (the
  other workers and the arbiter's listen backlog take new connections), and shuts, for
  reading, the connections that sit between two requests with nothing sent: their greenlets
  end at once. A request that has arrived, or is in progress, still gets its answer, and
  then its connection is closed. A client whose request was cut short got no answer and
  sends it again; for Salesforce that is its usual resend of an unacknowledged message.
- **``max_requests`` is honoured**, as in gunicorn's other workers.
- **A malformed request is logged without its text**: gevent's message quotes the request
  line, and the webhook token travels in its query.

Why gevent's server: per request it costs about two thirds of gunicorn's own HTTP parser on
gevent (docs/benchmarks.md), and the receiver's work per request is small next to it.

This module imports nothing of ours: gunicorn loads it in the arbiter, before gevent patches
the standard library in each worker.
"""

from __future__ import annotations

import contextlib
import socket
from functools import partial
from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler, PyWSGIServer

#: How long a connection accepted just before a stop may take to send its request line.
STOPPING_FIRST_REQUEST_S = 1.0
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class ReceiverServer(PyWSGIServer):  # type: ignore[misc]
    def __init__(self, *args: Any, worker: ReceiverWorker, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker = worker
        worker.servers.append(self)


class ReceiverHandler(PyWSGIHandler):  # type: ignore[misc]
    """One connection: its requests one after another, while the worker is alive."""

    server: ReceiverServer
    answered = 0

    def read_requestline(self) -> str:
        worker = self.server.worker
        keepalive = worker.cfg.keepalive
        if self.answered and keepalive <= 0:
            return ""
        sock = self.socket
        timeout_s = keepalive if keepalive > 0 else None
        # Idle from here: a stop may now end the connection. Registered before ``alive`` is
        # read, so a stop signalled in between still finds it.
        worker.idle.add(sock)
        try:
            if not worker.alive:
                if self.answered and not _has_data(sock):
                    return ""  # kept alive, nothing more asked: end it
                # A connection accepted just before the stop gets a moment to ask.
                timeout_s = STOPPING_FIRST_REQUEST_S
            sock.settimeout(timeout_s)
            try:
                return str(super().read_requestline())
            finally:
                sock.settimeout(None)
        finally:
            worker.idle.discard(sock)

    def _handle_client_error(self, ex: Exception) -> tuple[str, bytes]:
        # A request line or header that does not parse. gevent would log the request as
        # received, whose query may hold the webhook token: log only the kind of error.
        self.server.log.info("Refused a malformed HTTP request from %s: %s",
                             _host(self.client_address), type(ex).__name__)
        return "400", BAD_REQUEST

    def handle_one_response(self) -> None:
        try:
            super().handle_one_response()
        finally:
            self.answered += 1
            self.server.worker.count_request()


class ReceiverWorker(GeventPyWSGIWorker):  # type: ignore[misc]
    wsgi_handler = ReceiverHandler
    alive: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Sockets of connections waiting for their next request line.
        self.idle: set[socket.socket] = set()
        self.servers: list[ReceiverServer] = []
        self.server_class = partial(ReceiverServer, worker=self)

    def count_request(self) -> None:
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
            self.stop_serving()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        # Out of the signal handler, as gunicorn does for its own blocking work.
        gevent.spawn(self.stop_serving)

    def stop_serving(self) -> None:
        """Accept no more connections (the other workers and the arbiter's backlog take
        them) and end the idle ones that have not started a request."""
        for server in self.servers:
            if not server.closed:
                server.close()
        for sock in list(self.idle):
            if not _has_data(sock):
                _end_reading(sock)


def _host(address: Any) -> str:
    return str(address[0]) if isinstance(address, tuple) and address else str(address)


def _os_socket(sock: socket.socket) -> socket.socket:
    """The operating system's socket under a gevent one (gevent keeps it as ``_sock``).
    Peeking and shutting go there, past gevent's waiting machinery: gevent's own
    ``shutdown`` fails the waiting greenlet with "file descriptor was closed in another
    greenlet"."""
    return getattr(sock, "_sock", sock)


def _has_data(sock: socket.socket) -> bool:
    """Whether the client has sent bytes not read yet (a request on its way). A socket
    that cannot be peeked at (TLS without the raw socket at hand) counts as silent."""
    try:
        return bool(_os_socket(sock).recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (OSError, ValueError):
        return False


def _end_reading(sock: socket.socket) -> None:
    """Shut ``sock`` for reading: a greenlet waiting on it reads the end and finishes."""
    with contextlib.suppress(OSError):
        _os_socket(sock).shutdown(socket.SHUT_RD)
