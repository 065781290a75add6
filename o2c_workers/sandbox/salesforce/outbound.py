"""The outbound message sender: at-least-once delivery with Salesforce's retry behaviour."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from o2c_workers.redact import redact_text
from o2c_workers.sandbox.salesforce.config import SalesforceConfig
from o2c_workers.sandbox.salesforce.soap import HEADERS, Notification, build_message, is_ack

log = logging.getLogger("o2c.sandbox.salesforce.outbound")

#: Attempts kept in the delivery log.
LOG_LIMIT = 20_000


@dataclass
class _Pending:
    note: Notification
    created: float
    due: float
    attempts: int = 0
    duplicate: bool = False


@dataclass
class Definition:
    """One outbound message definition: the object it watches, its ActionId, its fields."""

    sobject: str
    action_id: str
    fields: tuple[str, ...]


@dataclass
class Endpoint:
    url: str
    auth: tuple[str, str] | None = None

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Split ``user:pass@`` out of the URL into basic auth; keep ``?token=`` as is."""
        parts = urlsplit(url)
        if parts.username is None:
            return cls(url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        return cls(clean, (unquote(parts.username), unquote(parts.password or "")))


@dataclass
class Envelope:
    """What the sender needs to address a message besides the notifications."""

    org_id: str
    enterprise_url: str
    partner_url: str
    session: Callable[[], str] | None = None


class OutboundSender:
    """Queues notifications and delivers them from a background thread until acknowledged."""

    def __init__(self, config: SalesforceConfig, envelope: Envelope,
                 definitions: dict[str, Definition]) -> None:
        self.config, self.envelope, self.definitions = config, envelope, definitions
        self.endpoint = Endpoint.parse(config.outbound_url) if config.outbound_url else None
        self._rng = random.Random(config.seed)
        self._pending: list[_Pending] = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = requests.Session()
        self._in_flight = 0
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.counts = {"queued": 0, "acked": 0, "dropped": 0, "duplicates": 0, "attempts": 0}

    def set_endpoint(self, url: str | None) -> None:
        with self._lock:
            self.endpoint = Endpoint.parse(url) if url else None

    def enqueue(self, note: Notification) -> None:
        now = time.monotonic()
        with self._lock:
            self._pending.append(_Pending(note, created=now, due=now))
            self.counts["queued"] += 1
            self._lock.notify_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sf-outbound", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.outbound_timeout_s + 1)
        self._http.close()

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until nothing is pending or in flight; whether that happened in time."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._pending or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.05))
            return True

    def _run(self) -> None:
        while not self._stop.wait(self.config.sender_tick_s):
            try:
                self.pump()
            except Exception:  # the sender outlives a bug in one round; the log says why
                log.exception("outbound sender round failed")

    def pump(self) -> None:
        """Drop what is too old, then deliver what is due, one message per batch."""
        for batch in self._take_due():
            self._deliver(batch)

    def _take_due(self) -> list[list[_Pending]]:
        now = time.monotonic()
        window = self.config.scaled(self.config.retry_window_s)
        with self._lock:
            for item in [p for p in self._pending if now - p.created > window]:
                self._pending.remove(item)
                self.counts["dropped"] += 1
                self._record([item], status=None, acked=False, dropped=True,
                             error="dropped: older than the retry window")
            if self.endpoint is None:
                return []
            due = [p for p in self._pending if p.due <= now]
            if self.config.reorder:
                self._rng.shuffle(due)
            else:
                due.sort(key=lambda p: p.created)
            batches: list[list[_Pending]] = []
            size = max(1, min(self.config.batch_size, 100))
            for definition in self.definitions.values():
                mine = [p for p in due if p.note.sobject == definition.sobject]
                batches += [mine[i:i + size] for i in range(0, len(mine), size)]
            if self.config.reorder:
                self._rng.shuffle(batches)
            for batch in batches:
                for item in batch:
                    self._pending.remove(item)
            self._in_flight += len(batches)
            return batches

    def _deliver(self, batch: list[_Pending]) -> None:
        definition = self.definitions[batch[0].note.sobject]
        endpoint = self.endpoint
        status, acked, error = None, False, None
        try:
            if endpoint is None:
                raise RuntimeError("no endpoint configured")
            session = self.envelope.session() if self.envelope.session else None
            body = build_message([p.note for p in batch], org_id=self.envelope.org_id,
                                 action_id=definition.action_id, session_id=session,
                                 enterprise_url=self.envelope.enterprise_url,
                                 partner_url=self.envelope.partner_url,
                                 pretty=self.config.pretty)
            answer = self._http.post(endpoint.url, data=body, headers=HEADERS,
                                     auth=endpoint.auth, timeout=self.config.outbound_timeout_s,
                                     verify=self.config.outbound_verify, allow_redirects=False)
            status, acked = answer.status_code, is_ack(answer.status_code, answer.content)
            if not acked:
                error = f"HTTP {status}" if status != 200 else "HTTP 200 without a SOAP Ack"
        except Exception as exc:  # any failure to deliver is a retry, as in Salesforce
            error = redact_text(f"{type(exc).__name__}: {exc}")
        self._settle(batch, status=status, acked=acked, error=error)

    def _settle(self, batch: list[_Pending], *, status: int | None, acked: bool,
                error: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            for item in batch:
                item.attempts += 1
            self.counts["attempts"] += 1
            self._record(batch, status=status, acked=acked, error=error)
            for item in batch:
                if acked:
                    self.counts["acked"] += 1
                    if not item.duplicate and self._rng.random() < self.config.duplicate_rate:
                        self.counts["duplicates"] += 1
                        self._pending.append(_Pending(item.note, created=now, due=now,
                                                      duplicate=True))
                    continue
                interval = min(self.config.retry_cap_s,
                               self.config.retry_base_s * 2 ** (item.attempts - 1))
                item.due = now + self.config.scaled(interval)
                self._pending.append(item)
            self._in_flight -= 1
            self._lock.notify_all()

    def _record(self, batch: list[_Pending], *, status: int | None, acked: bool,
                error: str | None, dropped: bool = False) -> None:
        self.log.append({
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "sobject": batch[0].note.sobject,
            "action_id": self.definitions[batch[0].note.sobject].action_id,
            "notification_ids": [p.note.id for p in batch],
            "record_ids": [p.note.fields.get("Id") for p in batch],
            "attempt": max(p.attempts for p in batch), "status": status, "acked": acked,
            "dropped": dropped, "duplicate": any(p.duplicate for p in batch), "error": error,
        })

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self.counts, "pending": len(self._pending), "in_flight": self._in_flight,
                    "endpoint": redact_text(self.endpoint.url) if self.endpoint else None}

    def deliveries(self) -> dict[str, Any]:
        with self._lock:
            return {**self.snapshot(), "attempts_log": list(self.log)}
