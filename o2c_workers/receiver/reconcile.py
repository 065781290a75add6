"""``GET /admin/reconcile?since=7d``: the ``o2c reconcile`` report as JSON, behind
``O2C_ADMIN_TOKEN`` (as ``/admin/dlq``). It reads both systems while the request waits:
its cost is the command's (see the README), so it is for people and a daily job, not for
a dashboard's refresh. It never repairs: ``o2c reconcile --fix`` does."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from config import ConfigError, Settings
from o2c_workers.dlq.errors import DlqError
from o2c_workers.dlq.query import parse_since
from o2c_workers.errors import O2CError
from o2c_workers.receiver.http import HTTPError, Request, Response, check_admin_token
from o2c_workers.reconcile import Reconciler

log = logging.getLogger("o2c.receiver.admin")

ADMIN_RECONCILE = "/admin/reconcile"
DEFAULT_SINCE = "7d"


class AdminReconcile:
    def __init__(self, settings: Settings, *, redis_client: redis.Redis, token: str,
                 build: Callable[[], Reconciler] | None = None) -> None:
        self.token = token
        self.build = build or (lambda: Reconciler.build(settings, redis_client=redis_client))
        self._reconciler: Reconciler | None = None
        self._lock = threading.Lock()

    def reconciler(self) -> Reconciler:
        with self._lock:
            if self._reconciler is None:
                self._reconciler = self.build()
            return self._reconciler

    def __call__(self, request: Request) -> Response:
        check_admin_token(request, self.token)
        if request.path.rstrip("/") != ADMIN_RECONCILE:
            raise HTTPError(404, f"no such path: {request.path}")
        if request.method != "GET":
            raise HTTPError(405, f"{request.method} is not allowed here",
                            headers=[("Allow", "GET")])
        value = request.query_value("since") or DEFAULT_SINCE
        now = time.time()
        try:
            since = parse_since(value, now=now)
        except DlqError:
            raise HTTPError(400, f"since={value!r} is not a time: use an ISO time such as "
                                 "2026-11-28T00:00Z, or 30m, 2h, 3d, 1w ago") from None
        if since is None or since > now:
            raise HTTPError(400, f"since={value!r} is in the future")
        try:
            reconciler = self.reconciler()
        except ConfigError as exc:
            log.error("reconcile is not configured: %s", exc)
            raise HTTPError(503, f"reconcile is not configured on this receiver: {exc}") from None
        try:
            report = reconciler.run(since)
        except redis.RedisError as exc:
            log.error("reconcile: Redis unavailable: %s", exc)
            raise HTTPError(503, "the state store is unavailable") from None
        except O2CError as exc:
            log.error("reconcile: could not read both systems: %s", exc)
            raise HTTPError(503, f"reconcile could not read both systems: {exc}") from None
        return Response.json(200, report.as_dict())
