"""Injected failures of the simulated org's REST API: the next calls to a resource fail."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from o2c_workers.sandbox.salesforce.store import SObjectError

#: The error code Salesforce sends with each status, when the fault names none.
DEFAULT_CODES = {500: "UNKNOWN_EXCEPTION", 503: "SERVER_UNAVAILABLE",
                 403: "REQUEST_LIMIT_EXCEEDED", 400: "INVALID_FIELD", 401: "INVALID_SESSION_ID"}


@dataclass
class Fault:
    resource: str
    status: int
    code: str
    left: int


class ApiFaults:
    """Faults by resource (``composite/sobjects``, ``Opportunity``, ``query``), each for a
    number of calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.injected = 0

    def configure(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise SObjectError(400, "JSON_PARSER_ERROR", "a JSON object")
        with self._lock:
            if body.get("clear"):
                self._faults.clear()
            elif body:
                status, count = body.get("status"), body.get("count", 1)
                if not isinstance(body.get("resource"), str) or not isinstance(status, int) \
                        or not 400 <= status <= 599 or not isinstance(count, int) or count < 1:
                    raise SObjectError(400, "JSON_PARSER_ERROR", 'send {"resource": ..., '
                                       '"status": 400-599, "errorCode": ..., "count": n}')
                code = str(body.get("errorCode") or DEFAULT_CODES.get(status, "UNKNOWN_EXCEPTION"))
                self._faults.append(Fault(body["resource"], status, code, count))
            return {"faults": [vars(f) for f in self._faults], "injected": self.injected}

    def check(self, resource: str) -> None:
        """Raise the first fault waiting for ``resource``, spending one of its calls."""
        with self._lock:
            for fault in self._faults:
                if fault.resource == resource and fault.left > 0:
                    fault.left -= 1
                    self.injected += 1
                    if fault.left == 0:
                        self._faults.remove(fault)
                    raise SObjectError(fault.status, fault.code, f"injected fault: {fault.code}")
