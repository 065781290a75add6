"""Serve the ERP simulator over HTTP on a background thread."""

from __future__ import annotations

import logging
import socketserver
import threading
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from o2c_workers.sandbox.erp.app import CONNECTION_KEY, ErpSimulator
from o2c_workers.sandbox.erp.config import ErpConfig
from o2c_workers.sandbox.http import RunningServer
from o2c_workers.sandbox.world import ErpSeed

log = logging.getLogger("o2c.sandbox.erp.http")


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class _Handler(WSGIRequestHandler):
    """Passes the client socket to the app, so that a "lost answer" can drop it."""

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ[CONNECTION_KEY] = self.connection
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


@dataclass
class RunningErp:
    """A running ERP simulator: its HTTP server and the simulator itself."""

    server: RunningServer
    simulator: ErpSimulator

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.simulator.stop()
        self.server.stop()


def serve_erp(seed: ErpSeed, config: ErpConfig, *, host: str = "127.0.0.1",
              port: int = 8100) -> RunningErp:
    """Start an ``ErpSimulator`` and serve it; ``port=0`` picks a free port."""
    simulator = ErpSimulator(seed, config)
    httpd = make_server(host, port, simulator, server_class=_ThreadingServer,
                        handler_class=_Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                              name="erp-sandbox-http", daemon=True)
    simulator.start()
    thread.start()
    return RunningErp(server=RunningServer(server=httpd, thread=thread), simulator=simulator)
