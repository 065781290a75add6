"""A small threaded WSGI server for the simulators, on a fixed or a free port."""

from __future__ import annotations

import logging
import socketserver
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

log = logging.getLogger("o2c.sandbox.http")


#: A TLS client gets this long to finish its handshake, on its own request thread.
HANDSHAKE_TIMEOUT_S = 10.0


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The listening socket accepts without the handshake (``do_handshake_on_connect``
        # off): done here, on the request's thread, a client that stays silent holds up
        # only itself, not the accept loop, every other client and ``shutdown()``.
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS handshake with %s failed: %s", client_address, exc)
                return
            request.settimeout(None)
        super().finish_request(request, client_address)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


@dataclass
class RunningServer:
    """A server running on a background thread."""

    server: WSGIServer
    thread: threading.Thread
    scheme: str = "http"

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(app: Any, *, host: str = "127.0.0.1", port: int = 0,
          ssl_context: ssl.SSLContext | None = None, name: str = "sandbox") -> RunningServer:
    """Serve ``app`` on a daemon thread; ``port=0`` picks a free port."""
    server = make_server(host, port, app, server_class=_ThreadingWSGIServer,
                         handler_class=_QuietHandler)
    scheme = "http"
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True,
                                                do_handshake_on_connect=False)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name=f"{name}-http", daemon=True)
    thread.start()
    return RunningServer(server=server, thread=thread, scheme=scheme)
