"""``POST /erp/events``: ERPNext webhooks, signed with a base64 HMAC-SHA256 of the body.

The ERP's Webhook doctype is set up to POST ``{"event", "doctype", "name", "modified",
"doc"}`` with the secret ``O2C_ERP_WEBHOOK_SECRET``. Each event is deduped on its document,
event and modification time, and routed to its domain queue. The tasks read the document's
current state from the ERP unless the event carries the document (``doc``, with
``modified``): then its task carries the fields it reads (``erp.documents.event_doc``) and
applies them when no newer version was seen.

The ERP change feed (``o2c_workers.sweeps.erp_feed``) plans the versions it finds here too,
``by`` ``keys.FED``. Both mark the document's version (its ``modified``, normalized by
``version_of`` so that ``2026-11-20 13:40:22`` and ``2026-11-20T13:40:22.000000`` are one):
the feed gives way to any event or earlier poll of that version, an event gives way to the
feed's mark and to its own (document, event, ``modified``) mark, never to another event's.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from pydantic import BaseModel, ConfigDict, ValidationError

from config import Settings
from config.routes import ERP_ROUTES
from o2c_workers import catalogue, keys, metrics, sfid, timeline
from o2c_workers.atomic import BatchWriter, Item, Op, Replicas
from o2c_workers.dlq import DeadLetter, DeadLetterStore
from o2c_workers.enqueue import MessageFactory, TaskMessage
from o2c_workers.erp import documents
from o2c_workers.errors import NotReplicated
from o2c_workers.infrastructure import BrokerUnavailable
from o2c_workers.receiver import durability
from o2c_workers.receiver.http import HTTPError, Request, Response

log = logging.getLogger("o2c.receiver.erp")

SIGNATURE_HEADER = "X-Frappe-Webhook-Signature"


@dataclass(frozen=True)
class EventPlan:
    """What one ERP event will become, and the writes that make it so."""

    item: Item
    outcome: str
    trace_key: str
    message: TaskMessage | None = None


class ErpEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    event: str
    doctype: str
    name: str
    modified: str | None = None
    doc: dict[str, Any] = {}


def signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def version_of(modified: str | None) -> str | None:
    """A document version's one form (``2026-11-20T13:40:22.123456``, no offset, as the ERP
    writes it), or None when ``modified`` is absent or not a time."""
    if not modified:
        return None
    try:
        stamp = dt.datetime.fromisoformat(modified.strip())
    except ValueError:
        return None
    return stamp.replace(tzinfo=None).isoformat(timespec="microseconds")


def version_marks(prefix: str, event: ErpEvent) -> dict[str, str]:
    """The dedupe keys of the event's document version by who took it in (``keys.FED``,
    ``keys.NOTIFIED``); none when it carries no ``modified``."""
    version = version_of(event.modified)
    if version is None:
        return {}
    return {by: keys.dedupe_erp_version(prefix, event.doctype, event.name, version, by)
            for by in (keys.FED, keys.NOTIFIED)}


def trace_key_of(event: ErpEvent) -> str:
    """The opportunity id when the document carries it, else the document itself."""
    for candidate in (event.doc.get("salesforce_id"), event.doc.get("po_no")):
        if isinstance(candidate, str) and sfid.is_valid(candidate):
            return sfid.to18(candidate)
    return f"erp:{event.doctype}:{event.name}"


class ErpEventHandler:
    def __init__(self, settings: Settings, *, messages: MessageFactory,
                 dead_letters: DeadLetterStore) -> None:
        secret = settings.erp_webhook_secret
        self.secret = secret.get_secret_value() if secret is not None else ""
        self.settings = settings
        self.messages = messages
        self.dead_letters = dead_letters
        self.prefix = settings.key_prefix

    def verify(self, request: Request, body: bytes) -> None:
        given = request.header(SIGNATURE_HEADER) or ""
        if not self.secret:
            log.error("ERP event refused: O2C_ERP_WEBHOOK_SECRET is not set")
            raise HTTPError(401, "ERP events are not configured on this receiver")
        if not hmac.compare_digest(given.encode(), signature(self.secret, body).encode()):
            raise HTTPError(401, f"missing or wrong {SIGNATURE_HEADER}")

    def parse(self, body: bytes) -> ErpEvent:
        try:
            return ErpEvent.model_validate(orjson.loads(body))
        except orjson.JSONDecodeError:
            raise HTTPError(400, "the body is not JSON") from None
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
            raise HTTPError(400, f"not an ERP event; check: {fields}") from None

    def plan(self, event: ErpEvent, *, now: float, by: str = keys.NOTIFIED) -> EventPlan:
        """The writes for one event, its outcome, its trace key and its message; ``by``
        the change feed (``keys.FED``), a version it found."""
        trace_key = trace_key_of(event)
        identity = f"{event.doctype}|{event.name}|{event.event}|{event.modified or ''}"
        mark = keys.dedupe_erp(self.prefix, hashlib.sha256(identity.encode()).hexdigest())
        versions = version_marks(self.prefix, event)
        summary = {"event": event.event, "doctype": event.doctype, "name": event.name,
                   "modified": event.modified}
        task = ERP_ROUTES.get((event.doctype, event.event))
        if task is None:
            entry = DeadLetter(
                trace_key=trace_key, domain="receiver", payload=summary,
                error_class="Unrouted", category=catalogue.UNROUTED, source="receiver",
                message=f"no route for ERP event {event.doctype} {event.event}",
                remediation=catalogue.remediation(catalogue.UNROUTED), first_failed_at=now,
                last_failed_at=now)
            return EventPlan(self._guard(mark, versions, self.dead_letters.add_ops(entry),
                                         by=by), "unrouted", trace_key)
        payload: dict[str, Any] = {**summary, "trace_key": trace_key, "received_at": now}
        doc = documents.event_doc(event.doctype, event.doc)
        if doc is not None:
            # The task applies the document as it came unless a newer version was seen.
            payload["doc"] = doc
        msg = self.messages.build(task, args=[payload], trace_key=trace_key,
                                  argsrepr=f"<{event.doctype} {event.name} {event.event}>")
        ops: list[Op] = timeline.record_ops(
            self.prefix, trace_key, "erp_fed" if by == keys.FED else "erp_event", at=now,
            doctype=event.doctype, name=event.name, erp_event=event.event,
            modified=event.modified)
        return EventPlan(self._guard(mark, versions, ops, by=by, messages=[msg]), "enqueued",
                         trace_key, msg)

    @staticmethod
    def _guard(mark: str, versions: dict[str, str], ops: list[Op], *, by: str,
               messages: Sequence[TaskMessage] = ()) -> Item:
        if by == keys.FED:
            if not versions:
                raise ValueError("the change feed plans only versions it can name")
            return Item.unless_any(list(versions.values()), ops, sets=[versions[keys.FED]],
                                   messages=messages)
        if not versions:
            return Item.unless_marked(mark, ops, messages=messages)
        return Item.unless_any([mark, versions[keys.FED]], ops,
                               sets=[mark, versions[keys.NOTIFIED]], messages=messages)


class ErpEventsEndpoint:
    """``POST /erp/events``: verify the signature, parse, plan, enqueue, answer."""

    def __init__(self, handler: ErpEventHandler, *, writer: BatchWriter, max_body_bytes: int,
                 dedupe_ttl_s: int, replicas: Replicas | None = None) -> None:
        self.handler = handler
        self.writer = writer
        self.replicas = replicas
        self.max_body_bytes = max_body_bytes
        self.dedupe_ttl_s = dedupe_ttl_s

    def __call__(self, request: Request) -> Response:
        handler = self.handler
        body = request.read_body(self.max_body_bytes)
        handler.verify(request, body)
        event = handler.parse(body)
        planned = handler.plan(event, now=time.time())
        outcome, trace_key = planned.outcome, planned.trace_key
        try:
            [fresh] = self.writer.run([planned.item], mark_ttl_s=self.dedupe_ttl_s,
                                      replicas=self.replicas)
        except NotReplicated as exc:
            raise durability.unavailable(exc, notifications=1) from None
        except (redis.RedisError, BrokerUnavailable) as exc:
            log.error("cannot enqueue ERP event: %s", exc, extra={"outcome": "unavailable"})
            raise HTTPError(503, "the queue is unavailable; resend later") from None
        outcome = outcome if fresh else "duplicate"
        metrics.notification("erp", outcome)
        log.info("ERP event %s", outcome, extra={
            "trace_key": trace_key, "doctype": event.doctype, "erp_name": event.name,
            "erp_event": event.event, "outcome": outcome})
        return Response.json(200, {"status": outcome, "trace_key": trace_key})
