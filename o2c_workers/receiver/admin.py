"""``/admin/dlq``: the dead-letter operations as JSON, behind ``O2C_ADMIN_TOKEN``.

``Authorization: Bearer <token>``; without the right token 401; with no token configured the
whole API answers 404, as if it were not there.

==========================================  ==================================================
``GET /admin/dlq``                          list: ``category``, ``domain``, ``since``,
                                            ``trace_key``, ``status``, ``limit`` (1 to 500,
                                            default 50), ``offset``, ``order=newest``
``GET /admin/dlq/stats``                    counts by status, category and domain; oldest open
``GET /admin/dlq/{id}``                     one entry and its audit history
``PATCH /admin/dlq/{id}``                   ``{"payload": ...}`` and/or ``{"set": {path: v}}``;
                                            422 when the result does not validate
``POST /admin/dlq/{id}/requeue``            requeue one; 409 with the reason if refused
``POST /admin/dlq/requeue``                 ``{"ids": [...]}`` or a filter (or ``"all": true``),
                                            ``"dry_run"``
``POST /admin/dlq/purge``                   ids or a filter, and ``"confirm": true``
==========================================  ==================================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
import redis

from o2c_workers.dlq import ops
from o2c_workers.dlq.errors import DlqError
from o2c_workers.dlq.query import Filter
from o2c_workers.receiver.http import HTTPError, Request, Response, check_admin_token

log = logging.getLogger("o2c.receiver.admin")

ADMIN_DLQ = "/admin/dlq"
#: The largest page a listing returns. A request holds its gunicorn worker (gevent) while it
#: reads and encodes entries, and that worker also takes Salesforce's messages.
MAX_PAGE = 500
_FILTER_FIELDS = ("status", "category", "domain", "trace_key", "since")


def _filter(values: dict[str, Any]) -> Filter:
    given = {name: values.get(name) for name in _FILTER_FIELDS}
    if given["status"] in (None, ""):
        given["status"] = "open"
    return Filter.build(**given)


class AdminDlq:
    """One handler for every path under ``/admin/dlq``."""

    def __init__(self, dlq: ops.Dlq, *, token: str, max_body: int) -> None:
        """``token`` empty: the API answers 404 (it is off)."""
        self.token = token
        self.max_body = max_body
        self.dlq = dlq

    def __call__(self, request: Request) -> Response:
        check_admin_token(request, self.token)
        rest = request.path[len(ADMIN_DLQ):].strip("/")
        handler = self._route(request, rest.split("/") if rest else [])
        try:
            return handler(request)
        except DlqError as exc:
            raise HTTPError(exc.status or 400, exc.message) from None
        except redis.RedisError as exc:
            log.error("dead-letter API: Redis unavailable: %s", exc)
            raise HTTPError(503, "the dead-letter store is unavailable") from None

    def _route(self, request: Request, parts: list[str]) -> Callable[[Request], Response]:
        fixed: dict[tuple[str, ...], dict[str, Callable[[Request], Response]]] = {
            (): {"GET": self.list},
            ("stats",): {"GET": self.stats},
            ("requeue",): {"POST": self.requeue_many},
            ("purge",): {"POST": self.purge},
        }
        entry_id = parts[0] if parts else ""
        per_entry: dict[tuple[str, ...], dict[str, Callable[[Request], Response]]] = {
            (entry_id,): {"GET": lambda r: self.show(entry_id),
                          "PATCH": lambda r: self.edit(r, entry_id)},
            (entry_id, "requeue"): {"POST": lambda r: self.requeue_one(r, entry_id)},
        }
        methods = fixed.get(tuple(parts)) or per_entry.get(tuple(parts))
        if methods is None:
            raise HTTPError(404, f"no such path: {request.path}")
        if request.method not in methods:
            raise HTTPError(405, f"{request.method} is not allowed here",
                            headers=[("Allow", ", ".join(sorted(methods)))])
        return methods[request.method]

    def _body(self, request: Request) -> dict[str, Any]:
        raw = request.read_body(self.max_body)
        try:
            data = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise HTTPError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise HTTPError(400, "the body must be a JSON object")
        return data

    def _selection(self, body: dict[str, Any]) -> tuple[list[str] | None, Filter | None]:
        ids = body.get("ids")
        if ids is not None:
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise HTTPError(400, "ids must be a list of entry ids")
            return ids, None
        if body.get("all") or any(body.get(name) for name in _FILTER_FIELDS):
            return None, _filter(body)
        raise HTTPError(400, 'give "ids", a filter (category, domain, since, trace_key, '
                             'status) or "all": true')

    # --- handlers ---------------------------------------------------------------------------

    def list(self, request: Request) -> Response:
        values = {name: request.query_value(name) for name in _FILTER_FIELDS}
        try:
            limit = int(request.query_value("limit") or 50)
            offset = int(request.query_value("offset") or 0)
        except ValueError:
            raise HTTPError(400, "limit and offset are whole numbers") from None
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise HTTPError(400, f"limit must be 1 to {MAX_PAGE} and offset 0 or more; "
                                 "page through with next_offset")
        listing = ops.list_entries(self.dlq, _filter(values), offset=offset, limit=limit,
                                   newest_first=request.query_value("order") == "newest")
        page = listing.page
        return Response.json(200, {
            "entries": [ops.summary(e) for e in listing.entries], "total": page.total,
            "offset": page.offset, "limit": page.limit, "next_offset": page.next_offset})

    def stats(self, request: Request) -> Response:
        return Response.json(200, ops.stats(self.dlq))

    def show(self, entry_id: str) -> Response:
        entry = ops.show(self.dlq, entry_id)
        return Response.json(200, {"entry": ops.as_json(entry),
                                   "history": ops.history(self.dlq, entry_id)})

    def edit(self, request: Request, entry_id: str) -> Response:
        body = self._body(request)
        sets = body.get("set") or {}
        if isinstance(sets, dict):
            assignments: list[Any] = list(sets.items())
        elif isinstance(sets, list) and all(isinstance(s, str) for s in sets):
            assignments = sets
        else:
            raise HTTPError(400, 'set is {"dotted.path": value} or ["path=value", ...]')
        payload = body["payload"] if "payload" in body else ops.UNCHANGED
        entry = ops.edit(self.dlq, entry_id, payload=payload, sets=assignments)
        return Response.json(200, {"entry": ops.as_json(entry)})

    def requeue_one(self, request: Request, entry_id: str) -> Response:
        """``?reclaim=true``: also an entry left ``requeuing`` by a requeue that died."""
        reclaim = request.query_value("reclaim") == "true"
        return Response.json(200, {"requeued": ops.requeue_one(self.dlq, entry_id,
                                                               reclaim=reclaim)})

    def requeue_many(self, request: Request) -> Response:
        body = self._body(request)
        ids, where = self._selection(body)
        report = ops.requeue(self.dlq, ids, where=where, dry_run=bool(body.get("dry_run")),
                             reclaim=body.get("reclaim") is True)
        return Response.json(200, report.as_dict())

    def purge(self, request: Request) -> Response:
        body = self._body(request)
        if body.get("confirm") is not True:
            raise HTTPError(400, 'purging needs "confirm": true')
        ids, where = self._selection(body)
        report = ops.purge(self.dlq, ids, where=where, reason=str(body.get("reason") or ""))
        return Response.json(200, report.as_dict())
