"""``GET /transactions/{trace_key}``: one transaction's timeline, behind ``O2C_ADMIN_TOKEN``.

The same story as ``o2c status TRACE_KEY``: milestones, every domain's timeline events and
dead letters. 404 when the fleet knows nothing of the trace key.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import redis

from o2c_workers.receiver.admin import check_admin_token
from o2c_workers.receiver.http import HTTPError, Request, Response
from o2c_workers.status import transaction_status

if TYPE_CHECKING:
    from o2c_workers.receiver.app import Receiver

log = logging.getLogger("o2c.receiver.admin")

TRANSACTIONS = "/transactions"


class Transactions:
    def __init__(self, receiver: Receiver) -> None:
        token = receiver.settings.admin_token
        self.token = token.get_secret_value() if token is not None else ""
        self.redis = receiver.redis
        self.prefix = receiver.settings.key_prefix
        self.stall_after_s = receiver.settings.stall_after_s

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
