"""ERPNext-style webhooks: signed JSON POSTs, retried with capped backoff until a 2xx.

The body is ``{"event": "on_submit", "doctype": ..., "name": ..., "modified": ...,
"doc": {...}}`` and ``X-Frappe-Webhook-Signature`` is
``base64(HMAC-SHA256(webhook_secret, raw body))``, as Frappe signs its webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from o2c_workers.backoff import compute_backoff
from o2c_workers.sandbox.delay import DelayQueue
from o2c_workers.sandbox.erp.config import ErpConfig
from o2c_workers.sandbox.erp.errors import dumps

log = logging.getLogger("o2c.sandbox.erp.webhooks")

SIGNATURE_HEADER = "X-Frappe-Webhook-Signature"


def sign(secret: str, body: bytes) -> str:
    """The value of ``X-Frappe-Webhook-Signature`` for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass
class Delivery:
    """One event and its delivery attempts."""

    id: int
    event: str
    doctype: str
    name: str
    body: bytes
    created: float
    attempts: list[dict[str, Any]] = field(default_factory=list)
    delivered: bool = False
    given_up: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.event, "doctype": self.doctype,
                "name": self.name, "created": self.created, "delivered": self.delivered,
                "given_up": self.given_up, "attempts": list(self.attempts)}


class WebhookSender:
    """Posts events on a background thread; every attempt is recorded."""

    def __init__(self, config: ErpConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._queue = DelayQueue("erp-webhooks")
        self._deliveries: list[Delivery] = []
        self._ids = itertools.count(1)
        self._rng = random.Random(config.seed)
        self._session = requests.Session()

    def post(self, event: str, doc: dict[str, Any]) -> None:
        """Queue ``event`` for ``doc`` (a snapshot is taken now)."""
        body = dumps({"event": event, "doctype": doc["doctype"], "name": doc["name"],
                      "modified": doc["modified"], "doc": doc})
        with self._lock:
            delivery = Delivery(next(self._ids), event, doc["doctype"], doc["name"], body,
                                time.time())
            self._deliveries.append(delivery)
        if self._config.webhook_url:
            self._queue.later(0, lambda: self._attempt(delivery))

    def start(self) -> None:
        self._queue.start()

    def stop(self) -> None:
        self._queue.stop(timeout_s=self._config.webhook_timeout_s + 2)
        self._session.close()

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [d.as_dict() for d in self._deliveries]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            attempts = [a for d in self._deliveries for a in d.attempts]
            return {
                "events": len(self._deliveries),
                "delivered": sum(d.delivered for d in self._deliveries),
                "pending": sum(not d.delivered and not d.given_up for d in self._deliveries)
                if self._config.webhook_url else 0,
                "given_up": sum(d.given_up for d in self._deliveries),
                "attempts": len(attempts),
                "failed_attempts": sum(not a["ok"] for a in attempts),
            }

    def _attempt(self, delivery: Delivery) -> None:
        url = self._config.webhook_url
        if not url:
            return
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: sign(self._config.webhook_secret, delivery.body)}
        started = time.time()
        status: int | None = None
        error: str | None = None
        try:
            response = self._session.post(url, data=delivery.body, headers=headers,
                                          timeout=self._config.webhook_timeout_s)
            status = response.status_code
            response.close()
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        with self._lock:
            delivery.attempts.append({"at": started, "status": status, "error": error,
                                      "ok": ok, "url": url})
            if ok:
                delivery.delivered = True
                return
            tries = len(delivery.attempts)
            if tries >= self._config.webhook_max_attempts:
                delivery.given_up = True
                log.warning("webhook %s for %s %s given up after %d attempts",
                            delivery.event, delivery.doctype, delivery.name, tries)
                return
            wait = compute_backoff(tries, base_s=self._config.webhook_retry_base_s,
                                   cap_s=self._config.webhook_retry_cap_s, rng=self._rng)
        self._queue.later(wait, lambda: self._attempt(delivery))
