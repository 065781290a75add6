"""``POST /salesforce/outbound``: authenticate, parse, validate, route, enqueue, then Ack."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import redis
from celery import Celery

from config import Settings
from config.routes import Route, match
from o2c_workers import catalogue, intake, keys, metrics, sentry, sfid, timeline
from o2c_workers.atomic import BatchWriter, Item, Replicas
from o2c_workers.dlq import DeadLetter, DeadLetterStore
from o2c_workers.enqueue import MessageFactory, TaskMessage
from o2c_workers.errors import NotReplicated
from o2c_workers.infrastructure import BrokerUnavailable
from o2c_workers.receiver import durability, soap
from o2c_workers.receiver.http import XML, HTTPError, Request, Response, constant_time_equal
from o2c_workers.receiver.records import ValidationError, describe_errors, validate_record
from o2c_workers.services import shared_reads

log = logging.getLogger("o2c.receiver")


@dataclass(frozen=True)
class Planned:
    """What one notification will become, and the writes that make it so."""

    notification: soap.Notification
    outcome: str
    trace_key: str
    item: Item
    detail: str | None = None
    #: The task message the item enqueues, when it enqueues one.
    message: TaskMessage | None = None


def wrap_notification(raw: str, organization_id: str) -> bytes:
    """An outbound message around one stored Notification element, for parsing it again."""
    return (
        f'<soapenv:Envelope xmlns:soapenv="{soap.SOAP_ENV}"><soapenv:Body>'
        f'<notifications xmlns="{soap.OUTBOUND}">'
        f"<OrganizationId>{escape(organization_id)}</OrganizationId>{raw}"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def parse_notification(raw: str, organization_id: str) -> tuple[soap.OutboundMessage,
                                                                 soap.Notification]:
    """Rebuild one Notification from its XML (a dead letter's ``raw``); ``BadMessage`` if not."""
    message = soap.parse(wrap_notification(raw, organization_id))
    if len(message.notifications) != 1:
        raise soap.BadMessage("expected exactly one Notification")
    return message, message.notifications[0]


class OutboundHandler:
    def __init__(self, settings: Settings, *, celery_app: Celery, dead_letters: DeadLetterStore,
                 routes: tuple[Route, ...], queue_prefix: str = "") -> None:
        self.settings = settings
        self.celery_app = celery_app
        self.dead_letters = dead_letters
        self.routes = routes
        self.messages = MessageFactory(celery_app, key_prefix=queue_prefix)
        self.prefix = settings.key_prefix
        self.allowed_orgs = [sfid.to15(org) for org in settings.salesforce_org_ids]
        token = settings.webhook_token
        self.token = token.get_secret_value() if token is not None else ""

    def authenticate(self, request: Request) -> None:
        given = request.query_value("token") or request.basic_password()
        if not self.token or not constant_time_equal(given, self.token):
            raise HTTPError(401, "missing or wrong webhook token",
                            headers=[("WWW-Authenticate", 'Basic realm="o2c"')])

    def check_org(self, organization_id: str) -> None:
        try:
            org15 = sfid.to15(organization_id)
        except ValueError:
            raise HTTPError(403, "OrganizationId is not a Salesforce id") from None
        if org15 not in self.allowed_orgs:
            raise HTTPError(403, "organization is not allowed")

    def plan(self, message: soap.OutboundMessage, *, now: float) -> list[Planned]:
        # The won opportunities of one message are read together (``shared_reads``).
        won = [str(n.fields["Id"]) for n in message.notifications
               if self._reads_opportunity(n) and sfid.is_valid(str(n.fields.get("Id") or ""))]
        together = shared_reads.groups(won, received_at=now)
        return [self._plan_one(message, n, now, together) for n in message.notifications]

    def _reads_opportunity(self, n: soap.Notification) -> bool:
        route = match(self.routes, n.sobject_type, n.fields.get("StageName"))
        return (route is not None and not route.ignored
                and route.tasks[0] == shared_reads.FIRST_TASK)

    def replan(self, raw: str, organization_id: str, *, now: float) -> Planned:
        """Plan a stored (and maybe edited) Notification again, as if it had just arrived."""
        message, notification = parse_notification(raw, organization_id)
        return self._plan_one(message, notification, now)

    def _plan_one(self, message: soap.OutboundMessage, n: soap.Notification,
                  now: float, together: dict[str, shared_reads.ReadGroup] | None = None,
                  ) -> Planned:
        raw_id = str(n.fields.get("Id") or "")
        trace_key = sfid.to18(raw_id) if sfid.is_valid(raw_id) else f"notification:{n.id}"
        mark = keys.dedupe_sf(self.prefix, n.id)
        route = match(self.routes, n.sobject_type, n.fields.get("StageName"))
        context = {"notification_id": n.id, "organization_id": message.organization_id,
                   "action_id": message.action_id, "sobject_type": n.sobject_type}
        try:
            record = validate_record(n.sobject_type, n.fields)
        except ValidationError as exc:
            return self._dead_letter(n, trace_key, mark, now, "invalid_payload",
                                     f"{n.sobject_type} failed validation: {describe_errors(exc)}",
                                     context)
        if route is None:
            stage = n.fields.get("StageName")
            what = n.sobject_type + (f" in stage {stage!r}" if stage else "")
            return self._dead_letter(n, trace_key, mark, now, "unrouted",
                                     f"no route for {what}", context)
        missing = [name for name in route.required if name not in n.fields]
        if missing:
            return self._dead_letter(n, trace_key, mark, now, "invalid_payload",
                                     f"route {route.name} needs field(s) {', '.join(missing)}",
                                     context)
        if route.ignored:
            ignored = timeline.record_ops(self.prefix, trace_key, "ignored", at=now,
                                          route=route.name, notification_id=n.id)
            return Planned(n, "ignored", trace_key, Item.unless_marked(mark, ignored))
        # A sweep that started this version of the record already makes this a duplicate.
        group = (together or {}).get(trace_key)
        msg, ops = intake.start_chain(
            self.messages, self.prefix, route, record, trace_key=trace_key, context=context,
            now=now, event="received", notification_id=n.id,
            argsrepr=f"<{n.sobject_type} {trace_key} notification {n.id}>",
            headers={shared_reads.HEADER: group.header()} if group else None)
        marks = intake.version_marks(self.prefix, trace_key, record)
        swept = [marks[keys.SWEPT]] if marks else []
        notified = [marks[keys.NOTIFIED]] if marks else []
        item = Item.unless_any([mark, *swept], ops, sets=[mark, *notified], messages=[msg])
        return Planned(n, "enqueued", trace_key, item, msg.queue, msg)

    def _dead_letter(self, n: soap.Notification, trace_key: str, mark: str, now: float,
                     category: str, reason: str, context: dict[str, Any]) -> Planned:
        remediation = catalogue.remediation(category)
        entry = DeadLetter(
            trace_key=trace_key, domain="receiver", task=None, payload={**context, "raw": n.raw},
            error_class="InvalidPayload" if category == "invalid_payload" else "Unrouted",
            category=category, message=reason, remediation=remediation,
            first_failed_at=now, last_failed_at=now, source="receiver",
        )
        ops = [*self.dead_letters.add_ops(entry), *timeline.record_ops(
            self.prefix, trace_key, "dead_lettered", at=now, category=category,
            dead_letter=entry.id, notification_id=n.id)]
        return Planned(n, category, trace_key, Item.unless_marked(mark, ops), reason)


class OutboundEndpoint:
    """``POST /salesforce/outbound``: authenticate, parse, plan, enqueue, then Ack."""

    def __init__(self, handler: OutboundHandler, *, writer: BatchWriter,
                 replicas: Replicas | None = None) -> None:
        self.handler = handler
        self.writer = writer
        self.replicas = replicas
        self.settings = handler.settings

    def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        handler = self.handler
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
                                    mark_ttl_s=self.settings.dedupe_ttl_s,
                                    replicas=self.replicas)
        except NotReplicated as exc:
            raise durability.unavailable(exc, notifications=len(planned)) from None
        except (redis.RedisError, BrokerUnavailable) as exc:
            log.error("cannot enqueue outbound message, no Ack: %s", exc,
                      extra={"outcome": "unavailable", "notifications": len(planned)})
            raise HTTPError(503, "the queue is unavailable; resend later") from None
        for plan, fresh in zip(planned, taken, strict=True):
            self._report(plan, plan.outcome if fresh else "duplicate")
        log.debug("acknowledged %d notifications in %.1f ms", len(planned),
                  (time.perf_counter() - started) * 1000)
        return Response(200, soap.ACK, XML)

    def _report(self, plan: Planned, outcome: str) -> None:
        metrics.notification("salesforce", outcome)
        log.info("notification %s", outcome, extra={
            "trace_key": plan.trace_key, "notification_id": plan.notification.id,
            "sobject_type": plan.notification.sobject_type,
            "outcome": outcome, "detail": plan.detail,
        })
        if outcome in (catalogue.INVALID_PAYLOAD, catalogue.UNROUTED):
            sentry.report_receiver_dead_letter(
                trace_key=plan.trace_key, category=outcome, message=str(plan.detail),
                report_business=self.settings.sentry_report_business_errors)
