"""The receiver: a small WSGI callable. Route, verify, parse, enqueue, answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from celery import Celery

from config import Settings
from config.routes import DEFAULT_ROUTES, Route
from o2c_workers import metrics, sentry
from o2c_workers.atomic import AtomicWriter
from o2c_workers.dlq import DeadLetterStore, ops
from o2c_workers.dlq.requeue import Replanner
from o2c_workers.enqueue import is_redis_broker
from o2c_workers.receiver import soap
from o2c_workers.receiver.admin import ADMIN_DLQ, AdminDlq
from o2c_workers.receiver.erp_events import ErpEventHandler
from o2c_workers.receiver.http import (
    XML,
    Environ,
    HTTPError,
    Request,
    Response,
    StartResponse,
)
from o2c_workers.receiver.outbound import OutboundHandler
from o2c_workers.receiver.transactions import TRANSACTIONS, Transactions
from o2c_workers.stalls import count_stalled

log = logging.getLogger("o2c.receiver")

Handler = Callable[[Request], Response]

SF_OUTBOUND = "/salesforce/outbound"
ERP_EVENTS = "/erp/events"
#: Paths that take notifications in, and the ``source`` label of their metrics.
SOURCES = {SF_OUTBOUND: "salesforce", ERP_EVENTS: "erp"}


class Receiver:
    """Takes Salesforce outbound messages (and ERP events) and enqueues them durably."""

    def __init__(self, settings: Settings, *, redis_client: redis.Redis, celery_app: Celery,
                 routes: tuple[Route, ...] = DEFAULT_ROUTES) -> None:
        settings.require("webhook_token", "salesforce_org_ids")
        if not is_redis_broker(settings.effective_broker_url):
            raise ValueError("the receiver enqueues atomically and needs a Redis broker")
        self.settings = settings
        self.redis = redis_client
        self.writer = AtomicWriter(redis_client)
        self.dead_letters = DeadLetterStore(redis_client, prefix=settings.key_prefix,
                                            retention_s=settings.dlq_retention_s)
        transport = celery_app.conf.broker_transport_options or {}
        self.outbound = OutboundHandler(
            settings, celery_app=celery_app, dead_letters=self.dead_letters, routes=routes,
            queue_prefix=str(transport.get("global_keyprefix", "")),
        )
        self.erp_events = ErpEventHandler(settings, messages=self.outbound.messages,
                                          dead_letters=self.dead_letters)
        self.stalled = metrics.StalledTransactions(self.count_stalled)
        self.routes: dict[str, dict[str, Handler]] = {
            SF_OUTBOUND: {"POST": self.salesforce_outbound},
            ERP_EVENTS: {"POST": self.erp_event},
            "/healthz": {"GET": self.healthz},
            "/readyz": {"GET": self.readyz},
            "/metrics": {"GET": self.prometheus},
        }
        #: Paths handled by one handler for everything below them (it checks the method).
        self.prefix_routes: list[tuple[str, Handler]] = []
        token = settings.admin_token.get_secret_value() if settings.admin_token else ""
        replanner = Replanner(self.outbound.messages, outbound=self.outbound,
                              erp_events=self.erp_events)
        dlq = ops.Dlq(self.dead_letters, replanner, actor="admin-api")
        self.add_prefix_route(ADMIN_DLQ, AdminDlq(dlq, token=token,
                                                  max_body=settings.max_body_bytes))
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

    # --- handlers ---------------------------------------------------------------------------

    def salesforce_outbound(self, request: Request) -> Response:
        started = time.perf_counter()
        handler = self.outbound
        handler.authenticate(request)
        body = request.read_body(self.settings.max_body_bytes)
        try:
            message = soap.parse(body)
        except soap.BadMessage as exc:
            log.info("refused outbound message: %s", exc, extra={"outcome": "bad_request"})
            raise HTTPError(400, str(exc)) from None
        handler.check_org(message.organization_id)
        planned = handler.plan(message, now=time.time())
        try:
            taken = self.writer.run([p.item for p in planned],
                                    mark_ttl_s=self.settings.dedupe_ttl_s)
        except redis.RedisError as exc:
            log.error("cannot enqueue outbound message, no Ack: %s", exc,
                      extra={"outcome": "unavailable", "notifications": len(planned)})
            raise HTTPError(503, "the queue is unavailable; resend later") from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        for plan, fresh in zip(planned, taken, strict=True):
            outcome = plan.outcome if fresh else "duplicate"
            metrics.notification("salesforce", outcome)
            log.info("notification %s", outcome, extra={
                "trace_key": plan.trace_key, "notification_id": plan.notification.id,
                "sobject_type": plan.notification.sobject_type,
                "outcome": outcome, "detail": plan.detail,
            })
            if outcome in ("invalid_payload", "unrouted"):
                sentry.report_receiver_dead_letter(
                    trace_key=plan.trace_key, category=outcome, message=str(plan.detail),
                    report_business=self.settings.sentry_report_business_errors)
        log.debug("acknowledged %d notifications in %.1f ms", len(planned), elapsed_ms)
        return Response(200, soap.ACK, XML)

    def erp_event(self, request: Request) -> Response:
        handler = self.erp_events
        body = request.read_body(self.settings.max_body_bytes)
        handler.verify(request, body)
        event = handler.parse(body)
        item, outcome, trace_key = handler.plan(event, now=time.time())
        try:
            [fresh] = self.writer.run([item], mark_ttl_s=self.settings.dedupe_ttl_s)
        except redis.RedisError as exc:
            log.error("cannot enqueue ERP event: %s", exc, extra={"outcome": "unavailable"})
            raise HTTPError(503, "the queue is unavailable; resend later") from None
        outcome = outcome if fresh else "duplicate"
        metrics.notification("erp", outcome)
        log.info("ERP event %s", outcome, extra={
            "trace_key": trace_key, "doctype": event.doctype, "erp_name": event.name,
            "erp_event": event.event, "outcome": outcome})
        return Response.json(200, {"status": outcome, "trace_key": trace_key})

    def healthz(self, request: Request) -> Response:
        return Response.json(200, {"status": "ok"})

    def prometheus(self, request: Request) -> Response:
        """Prometheus exposition; every gunicorn worker's counts in multiprocess mode, and
        the fleet's stalled transactions, counted in Redis now."""
        body, content_type = metrics.render(extra=[self.stalled])
        return Response(200, body, content_type)

    def count_stalled(self) -> int | None:
        try:
            return count_stalled(self.redis, self.settings.key_prefix,
                                 stall_after_s=self.settings.stall_after_s)
        except redis.RedisError as exc:
            log.warning("cannot count stalled transactions: %s", exc)
            return None

    def readyz(self, request: Request) -> Response:
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            return Response.json(503, {"status": "unavailable", "redis": str(exc)})
        return Response.json(200, {"status": "ready"})


def create_receiver(settings: Settings | None = None, **kwargs: Any) -> Receiver:
    """Build the receiver from the environment (the gunicorn entry point uses this)."""
    from config import get_settings
    from o2c_workers.celery_app import get_app
    from o2c_workers.runtime import connect

    settings = settings or get_settings()
    sentry.init(settings, component="receiver")
    client = connect(settings.redis_url, retries=1)
    return Receiver(settings, redis_client=client, celery_app=get_app(), **kwargs)
