"""The ERP simulator as a WSGI callable: Frappe's ``/api`` plus the ``/_sandbox`` controls.

Each ``/api`` call passes, in order: the gate (maintenance 503, rate limit 429, concurrency
limit 429), injected latency, an injected 5xx, authentication (401), then the handler; a
successful POST/PUT may then lose its answer (``timeout_after_commit_rate``). Every call is
recorded. ``/_sandbox`` endpoints need no authentication:

* ``GET|POST /_sandbox/faults`` current faults / partial update (400 on bad values)
* ``GET /_sandbox/calls?since=<epoch s>&after_seq=<n>`` the record of ``/api`` calls
* ``GET /_sandbox/stats``, ``POST /_sandbox/reset-stats``
* ``POST /_sandbox/tax-rules`` ``{"country": "DE", "rate": 19}`` adds a Tax Rule
* ``GET /_sandbox/webhooks`` every webhook event and its delivery attempts
* ``GET /_sandbox/documents/{DocType}`` every document of a DocType, outside the faults
  and the limits (what a test or a judge reads without disturbing the run);
  ``?field=a,b`` keeps those whose top-level ``field`` is one of the values
* ``POST /_sandbox/orders/{name}/invoice`` or ``/deliver``: a submitted Sales Order
  invoiced now (``per_billed`` 100) or delivered (``per_delivered`` 100)

Cancel, close and re-open go through ``/api`` as in Frappe (``transitions.py``).
"""

from __future__ import annotations

import copy
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from o2c_workers.sandbox.erp import customfields, masters
from o2c_workers.sandbox.erp.config import ErpConfig
from o2c_workers.sandbox.erp.documents import DocumentStore
from o2c_workers.sandbox.erp.errors import FrappeError, dumps, loads, validation
from o2c_workers.sandbox.erp.faults import Gate
from o2c_workers.sandbox.erp.lifecycle import Lifecycle
from o2c_workers.sandbox.erp.resources import ResourceApi
from o2c_workers.sandbox.erp.stats import Stats
from o2c_workers.sandbox.erp.transitions import Transitions
from o2c_workers.sandbox.erp.webhooks import WebhookSender
from o2c_workers.sandbox.world import ErpSeed

log = logging.getLogger("o2c.sandbox.erp")

StartResponse = Callable[..., Any]
Answer = tuple[int, Any, dict[str, str]]

#: The environ key under which the server passes the client socket (to drop it).
CONNECTION_KEY = "o2c.sandbox.connection"

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
            413: "Request Entity Too Large", 417: "Expectation Failed",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


class ErpSimulator:
    """A Frappe/ERPNext subset with injectable faults and a record of every call."""

    def __init__(self, seed: ErpSeed, config: ErpConfig) -> None:
        self.seed = seed
        self.config = config
        self.store = DocumentStore(seed=config.seed, zone=ZoneInfo(config.time_zone))
        masters.seed_store(self.store, seed)
        customfields.seed(self.store, non_unique=config.non_unique_salesforce_id)
        self.stats = Stats()
        self.gate = Gate(config.faults, seed=config.seed)
        self.webhooks = WebhookSender(config)
        self.lifecycle = Lifecycle(self.store, config, self.webhooks)
        self.transitions = Transitions(self.store, self.webhooks)
        self.resources = ResourceApi(self.store, seed, self.lifecycle, self.transitions,
                                     rate_precision=config.rate_precision)
        self._stopping = threading.Event()

    def start(self) -> None:
        """Start the background threads (invoicing, payments, webhook delivery)."""
        self._stopping.clear()
        self.webhooks.start()
        self.lifecycle.start()

    def stop(self) -> None:
        """Stop the background threads and release calls hanging on a lost answer."""
        self._stopping.set()
        self.lifecycle.stop()
        self.webhooks.stop()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        raw_path = environ.get("PATH_INFO") or "/"
        # wsgiref decodes the path as latin-1; names may be UTF-8.
        path = raw_path.encode("latin-1", "replace").decode("utf-8", "replace")
        if path.startswith("/api/"):
            status, body, headers = self._api(environ, path)
        elif path.startswith("/_sandbox/"):
            status, body, headers = self._sandbox(environ, path)
        else:
            status, body, headers = 404, {"exc_type": "DoesNotExistError",
                                          "exception": f"Not found: {path}"}, {}
        payload = dumps(body)
        start_response(f"{status} {_REASONS.get(status, 'Error')}",
                       [("Content-Type", "application/json"),
                        ("Content-Length", str(len(payload))), *headers.items()])
        return [payload]

    def _api(self, environ: dict[str, Any], path: str) -> Answer:
        started, started_wall = time.monotonic(), time.time()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        doctype = _doctype_of(path)

        def record(status: int, fault: str | None = None, exc: str | None = None) -> None:
            self.stats.record(method=method, path=path, query=environ.get("QUERY_STRING", ""),
                              status=status, started=started, started_wall=started_wall,
                              fault=fault, exc_type=exc, doctype=doctype)

        refusal, kind = self.gate.admit()
        if refusal is not None and kind is not None:
            self.stats.count_fault(kind)
            record(refusal.status, kind, refusal.exc_type)
            return refusal.status, refusal.body(), refusal.headers
        try:
            return self._admitted(environ, path, method, doctype, record)
        finally:
            self.gate.release()

    def _admitted(self, environ: dict[str, Any], path: str, method: str, doctype: str | None,
                  record: Callable[..., None]) -> Answer:
        delay = self.gate.latency_s()
        if delay > 0:
            self.stats.count_fault("latency")
            self._stopping.wait(delay)
        injected = self.gate.inject_error()
        if injected is not None:
            self.stats.count_fault("error")
            record(injected.status, "error", injected.exc_type)
            return injected.status, injected.body(), {}
        try:
            self._authenticate(environ)
            body = self._route(environ, path, method)
        except FrappeError as exc:
            self.stats.count_refusal(doctype, exc.exc_type)
            record(exc.status, None, exc.exc_type)
            return exc.status, exc.body(), exc.headers
        except Exception:
            log.exception("ERP simulator failed on %s %s", method, path)
            error = FrappeError(500, "InternalServerError", "Internal Server Error")
            record(500, None, error.exc_type)
            return 500, error.body(), {}
        hang = self.gate.lose_answer() if method in ("POST", "PUT") else None
        if hang is None:
            record(200)
            return 200, body, {}
        self.stats.count_fault("timeout_after_commit")
        record(200, "timeout_after_commit")
        self._stopping.wait(hang)
        # Writing the answer to the shut socket fails quietly inside the server.
        _drop(environ)
        return 200, body, {}

    def _authenticate(self, environ: dict[str, Any]) -> None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, credentials = header.partition(" ")
        key, _, secret = credentials.strip().partition(":")
        ok = scheme.lower() == "token" \
            and hmac.compare_digest(key.encode(), self.config.api_key.encode()) \
            and hmac.compare_digest(secret.encode(), self.config.api_secret.encode())
        if not ok:
            raise FrappeError(401, "AuthenticationError", "Invalid API key or secret",
                              title="Not Permitted")

    def _route(self, environ: dict[str, Any], path: str, method: str) -> Any:
        parts = [unquote(p) for p in path.split("/")[2:]]
        params = _params(environ)
        if parts[:1] == ["resource"] and len(parts) in (2, 3):
            doctype = parts[1]
            name = parts[2] if len(parts) == 3 else None
            if method == "GET":
                return self.resources.get(doctype, name) if name is not None \
                    else self.resources.list(doctype, params)
            if method == "POST" and name is None:
                return self.resources.insert(doctype, _json_body(environ, self.config))
            if method == "PUT" and name is not None:
                return self.resources.update(doctype, name, _json_body(environ, self.config))
            raise FrappeError(405, "ValidationError", f"Method {method} not allowed here")
        if parts[:1] == ["method"] and len(parts) == 2:
            if method == "POST":
                body = _json_body(environ, self.config)
                params = {**params, **(body if isinstance(body, dict) else {})}
            return self.resources.method(parts[1], params)
        raise FrappeError(404, "DoesNotExistError", f"Not found: {path}")

    def _sandbox(self, environ: dict[str, Any], path: str) -> Answer:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        route = path.removeprefix("/_sandbox/").strip("/")
        params = _params(environ)
        try:
            match (method, route):
                case ("GET", "faults"):
                    return 200, self.gate.current(), {}
                case ("POST", "faults"):
                    return 200, self.gate.update(_sandbox_body(environ, self.config)), {}
                case ("GET", "calls"):
                    since = float(params["since"]) if params.get("since") else None
                    after = int(params["after_seq"]) if params.get("after_seq") else None
                    return 200, {"calls": self.stats.calls(since=since, after_seq=after)}, {}
                case ("GET", "stats"):
                    return 200, self.snapshot(), {}
                case ("POST", "reset-stats"):
                    self.stats.reset()
                    self.gate.reset_peaks()
                    return 200, {"ok": True}, {}
                case ("POST", "tax-rules"):
                    body = _sandbox_body(environ, self.config)
                    rule = masters.add_tax_rule(self.store, self.seed, str(body["country"]),
                                                body["rate"])
                    return 200, {"data": rule}, {}
                case ("GET", "webhooks"):
                    return 200, {"deliveries": self.webhooks.deliveries()}, {}
                case ("POST", order) if order.startswith("orders/"):
                    return 200, self._order_control(order), {}
                case ("GET", documents) if documents.startswith("documents/"):
                    doctype = unquote(documents.removeprefix("documents/"))
                    return 200, {"data": self._documents(doctype, params)}, {}
                case ("GET", "health"):
                    return 200, {"ok": True}, {}
        except ValidationError as exc:
            return 400, {"error": "invalid faults", "details": _pydantic_errors(exc)}, {}
        except (KeyError, ValueError, TypeError, FrappeError) as exc:
            return 400, {"error": f"bad request: {exc}"}, {}
        return 404, {"error": f"no sandbox endpoint {method} {path}"}, {}

    def _documents(self, doctype: str, params: dict[str, str]) -> list[Any]:
        """Every document of ``doctype``, or those whose fields hold one of the values
        named (``?po_no=a,b``)."""
        wanted = {name: set(values.split(",")) for name, values in params.items()}
        with self.store.lock:
            return copy.deepcopy([doc for doc in self.store.all(doctype)
                                  if all(str(doc.get(k)) in v for k, v in wanted.items())])

    def _order_control(self, route: str) -> dict[str, Any]:
        """``orders/{name}/invoice`` or ``orders/{name}/deliver``: the order afterwards."""
        _, name, action = [*route.split("/"), "", ""][:3]
        actions = {"invoice": self.lifecycle.invoice_now, "deliver": self.transitions.deliver}
        if action not in actions:
            raise ValueError(f"no order action {action!r} (invoice, deliver)")
        actions[action](unquote(name))
        return {"data": self.store.copy("Sales Order", unquote(name))}

    def snapshot(self) -> dict[str, Any]:
        """Everything ``GET /_sandbox/stats`` reports."""
        stats = self.stats.snapshot()
        stats.update(
            documents=self.store.counts(), documents_created=self.store.created(),
            peak_requests_per_s={"received": self.gate.peak_received_per_s,
                                 "accepted": self.gate.peak_admitted_per_s},
            peak_concurrency=self.gate.peak_concurrency, faults=self.gate.current(),
            webhooks=self.webhooks.snapshot(),
            lifecycle={"scheduled": self.lifecycle.scheduled()})
        return stats


def _doctype_of(path: str) -> str | None:
    parts = path.split("/")
    return unquote(parts[3]) if len(parts) > 3 and parts[2] == "resource" else None


def _params(environ: dict[str, Any]) -> dict[str, str]:
    parsed = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def _read(environ: dict[str, Any], config: ErpConfig) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > config.max_body_bytes:
        raise FrappeError(413, "ValidationError", "Request Entity Too Large")
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _json_body(environ: dict[str, Any], config: ErpConfig) -> Any:
    raw = _read(environ, config)
    if "application/x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        return form
    if not raw.strip():
        return {}
    try:
        return loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise validation("The request body is not valid JSON") from None


def _sandbox_body(environ: dict[str, Any], config: ErpConfig) -> dict[str, Any]:
    try:
        body = _json_body(environ, config)
    except FrappeError as exc:
        raise ValueError(exc.message) from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _pydantic_errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors()]


def _drop(environ: dict[str, Any]) -> None:
    """Close the client connection without an answer (the answer was "lost")."""
    conn = environ.get(CONNECTION_KEY)
    if isinstance(conn, socket.socket):
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            log.debug("connection already gone")
