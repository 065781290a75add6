"""``GET /transactions/{trace_key}``: one transaction's timeline, behind ``O2C_ADMIN_TOKEN``.

The same story as ``o2c status TRACE_KEY``: milestones, every domain's timeline events and
dead letters. 404 when the fleet knows nothing of the trace key.
"""

from __future__ import annotations

import logging

import redis

from o2c_workers.receiver.http import HTTPError, Request, Response, check_admin_token
from o2c_workers.status import transaction_status

log = logging.getLogger("o2c.receiver.admin")

TRANSACTIONS = "/transactions"


class Transactions:
    def __init__(self, client: redis.Redis, *, prefix: str, token: str,
                 stall_after_s: int) -> None:
        self.token = token
        self.redis = client
        self.prefix = prefix
        self.stall_after_s = stall_after_s

    def __call__(self, request: Request) -> Response:
        check_admin_token(request, self.token)
        trace_key = request.path[len(TRANSACTIONS):].strip("/")
        if not trace_key or "/" in trace_key:
            raise HTTPError(404, "give one trace key: /transactions/{trace_key}")
        if request.method != "GET":
            raise HTTPError(405, f"{request.method} is not allowed here",
                            headers=[("Allow", "GET")])
        try:
            result = transaction_status(self.redis, self.prefix, trace_key,
                                        stall_after_s=self.stall_after_s)
        except redis.RedisError as exc:
            log.error("transaction status: Redis unavailable: %s", exc)
            raise HTTPError(503, "the state store is unavailable") from None
        return Response.json(200 if result["found"] else 404, result)
