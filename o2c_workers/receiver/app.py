"""The receiver: a small WSGI callable. Route, verify, parse, enqueue, answer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import redis
from celery import Celery

from config import Settings
from config.routes import DEFAULT_ROUTES, Route
from o2c_workers import broker, metrics, sentry
from o2c_workers.dlq import DeadLetterStore, ops
from o2c_workers.receiver import durability, soap
from o2c_workers.receiver.admin import ADMIN_DLQ, AdminDlq
from o2c_workers.receiver.erp_events import ErpEventHandler, ErpEventsEndpoint
from o2c_workers.receiver.health import BrokerCheck, Health, Metrics
from o2c_workers.receiver.http import (
    XML,
    Environ,
    HTTPError,
    Request,
    Response,
    StartResponse,
)
from o2c_workers.receiver.outbound import OutboundEndpoint, OutboundHandler
from o2c_workers.receiver.reconcile import ADMIN_RECONCILE, AdminReconcile
from o2c_workers.receiver.replan import Replanner
from o2c_workers.receiver.transactions import TRANSACTIONS, Transactions

log = logging.getLogger("o2c.receiver")

Handler = Callable[[Request], Response]

SF_OUTBOUND = "/salesforce/outbound"
ERP_EVENTS = "/erp/events"
#: Paths that take notifications in, and the ``source`` label of their metrics.
SOURCES = {SF_OUTBOUND: "salesforce", ERP_EVENTS: "erp"}


class Receiver:
    """Routes each request to its endpoint and shapes the errors; the endpoints (one file
    each) take Salesforce outbound messages and ERP events in and enqueue them durably."""

    def __init__(self, settings: Settings, *, redis_client: redis.Redis, celery_app: Celery,
                 routes: tuple[Route, ...] = DEFAULT_ROUTES) -> None:
        # The settings vouch for the broker (config.broker): this Redis, or RabbitMQ, where
        # the writer publishes before it marks. Either way the workers consume it.
        settings.require("webhook_token", "salesforce_org_ids")
        self.settings = settings
        self.redis = redis_client
        writer = broker.batch_writer(settings, redis_client)
        replicas = durability.replicas(settings)
        dead_letters = DeadLetterStore(redis_client, prefix=settings.key_prefix,
                                       retention_s=settings.dlq_retention_s)
        transport = celery_app.conf.broker_transport_options or {}
        outbound = OutboundHandler(
            settings, celery_app=celery_app, dead_letters=dead_letters, routes=routes,
            queue_prefix=str(transport.get("global_keyprefix", "")),
        )
        erp_events = ErpEventHandler(settings, messages=outbound.messages,
                                     dead_letters=dead_letters)
        publisher = broker.publisher(settings)
        health = Health(redis_client,
                        broker=None if publisher is None else BrokerCheck(publisher))
        self.routes: dict[str, dict[str, Handler]] = {
            SF_OUTBOUND: {"POST": OutboundEndpoint(outbound, writer=writer,
                                                   replicas=replicas)},
            ERP_EVENTS: {"POST": ErpEventsEndpoint(
                erp_events, writer=writer, max_body_bytes=settings.max_body_bytes,
                dedupe_ttl_s=settings.dedupe_ttl_s, replicas=replicas)},
            "/healthz": {"GET": health.live},
            "/readyz": {"GET": health.ready},
            "/metrics": {"GET": Metrics(redis_client, prefix=settings.key_prefix,
                                        stall_after_s=settings.stall_after_s)},
        }
        #: Paths handled by one handler for everything below them (it checks the method).
        self.prefix_routes: list[tuple[str, Handler]] = []
        token = settings.admin_token.get_secret_value() if settings.admin_token else ""
        replanner = Replanner(outbound.messages, outbound=outbound, erp_events=erp_events)
        dlq = ops.Dlq(dead_letters, replanner, actor="admin-api",
                      publisher=publisher)
        self.add_prefix_route(ADMIN_DLQ, AdminDlq(dlq, token=token,
                                                  max_body=settings.max_body_bytes))
        self.add_prefix_route(ADMIN_RECONCILE, AdminReconcile(
            settings, redis_client=redis_client, token=token))
        self.add_prefix_route(TRANSACTIONS, Transactions(
            redis_client, prefix=settings.key_prefix, token=token,
            stall_after_s=settings.stall_after_s))

    def add_route(self, path: str, method: str, handler: Handler) -> None:
        self.routes.setdefault(path, {})[method] = handler

    def add_prefix_route(self, prefix: str, handler: Handler) -> None:
        """``handler`` takes ``prefix`` and every path below it (``prefix/...``)."""
        self.prefix_routes.append((prefix.rstrip("/"), handler))

    def _prefix_handler(self, path: str) -> Handler | None:
        for prefix, handler in self.prefix_routes:
            if path == prefix or path.startswith(prefix + "/"):
                return handler
        return None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        return self.dispatch(request)(start_response)

    def dispatch(self, request: Request) -> Response:
        soap_path = request.path == SF_OUTBOUND
        methods = self.routes.get(request.path)
        try:
            if methods is None and (prefixed := self._prefix_handler(request.path)):
                return prefixed(request)
            if methods is None:
                raise HTTPError(404, f"no such path: {request.path}")
            handler = methods.get(request.method)
            if handler is None:
                raise HTTPError(405, f"{request.method} is not allowed here",
                                headers=[("Allow", ", ".join(sorted(methods)))])
            return handler(request)
        except HTTPError as exc:
            source = SOURCES.get(request.path)
            if source is not None:
                metrics.rejected(source, exc.status)
            if soap_path:
                return Response(exc.status, soap.fault(exc.message, server=exc.status >= 500),
                                XML, headers=exc.headers)
            return Response.json(exc.status, {"error": exc.message}, headers=exc.headers)
        except Exception as exc:
            sentry.capture_receiver_error(exc, path=request.path)
            raise


def create_receiver(settings: Settings | None = None, **kwargs: Any) -> Receiver:
    """Build the receiver from the environment (the gunicorn entry point uses this)."""
    from config import get_settings
    from o2c_workers.celery_app import get_app
    from o2c_workers.runtime import connect

    settings = settings or get_settings()
    sentry.init(settings, component="receiver")
    client = connect(settings.redis_url, retries=1)
    return Receiver(settings, redis_client=client, celery_app=get_app(), **kwargs)
