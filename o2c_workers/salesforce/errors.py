"""Every Salesforce failure mapped once onto the fleet's error tree.

======================================  ==========================================
what Salesforce (or the network) did    raised
======================================  ==========================================
401 (after one token refresh)           ``AuthError``
403 ``REQUEST_LIMIT_EXCEEDED``          ``Throttled`` (``retry_after_s`` 15 minutes)
403 anything else                       ``AuthError``
404                                     ``NotFound``
300 (external id matches many records)  ``InvalidPayload`` ``MULTIPLE_RECORDS``
400 ``UNABLE_TO_LOCK_ROW``              ``Transient`` (record lock contention)
400 and other 4xx                       ``InvalidPayload`` with the ``errorCode``
429                                     ``Throttled``
5xx, connection refused, timeouts       ``Transient``
======================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests
from simple_salesforce.exceptions import SalesforceError

from o2c_workers.errors import (
    AuthError,
    InvalidPayload,
    NotFound,
    O2CError,
    Throttled,
    Transient,
)

#: Seconds to wait once the org's rolling 24 h API allocation is spent; the caller caps it.
LIMIT_RETRY_AFTER_S = 900.0
#: Seconds to wait after a 429 from a proxy in front of Salesforce.
THROTTLED_RETRY_AFTER_S = 60.0
#: Error codes that go away on their own, whatever the status they come with.
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
#: Composite results say this of the valid records when another one failed.
ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


def error_items(content: Any) -> list[dict[str, Any]]:
    """Salesforce's ``[{"message", "errorCode", "fields"}]``, whatever shape arrived."""
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return []
    return [item for item in content if isinstance(item, dict)]


def _code(item: dict[str, Any]) -> str:
    return str(item.get("errorCode") or item.get("statusCode") or "UNKNOWN")


def summary(items: Sequence[dict[str, Any]]) -> str:
    """``CODE: message`` of each error, joined."""
    return "; ".join(f"{_code(item)}: {item.get('message', '')}".rstrip(": ")
                     for item in items)


def from_status(status: int, content: Any, *, what: str) -> O2CError:
    """The error for a non-success answer to ``what`` (a description free of secrets)."""
    items = error_items(content)
    code = _code(items[0]) if items else f"HTTP_{status}"
    detail = summary(items) or code
    message = f"Salesforce refused to {what}: HTTP {status} {detail}"
    options: dict[str, Any] = {"reason": code, "status": status, "body": items or None}
    if status == 401:
        return AuthError(message, **options)
    if status == 403 and code == LIMIT_EXCEEDED:
        return Throttled(message, retry_after_s=LIMIT_RETRY_AFTER_S, **options)
    if status == 403:
        return AuthError(message, **options)
    if status == 404:
        return NotFound(message, **options)
    if status == 429:
        return Throttled(message, retry_after_s=THROTTLED_RETRY_AFTER_S, **options)
    if status >= 500 or code in TRANSIENT_CODES:
        return Transient(message, **options)
    if status == 300:
        return InvalidPayload(f"Salesforce could not {what}: the external id matches more "
                              "than one record", reason="MULTIPLE_RECORDS", status=status,
                              body=content)
    if 400 <= status < 500:
        return InvalidPayload(message, **options)
    return Transient(message, **options)


def from_exception(exc: Exception, *, what: str) -> O2CError:
    """The error for a simple-salesforce or requests exception raised doing ``what``."""
    if isinstance(exc, SalesforceError):
        return from_status(exc.status, exc.content, what=what)
    if isinstance(exc, requests.Timeout):
        return Transient(f"Salesforce did not answer in time to {what}", reason="timeout")
    if isinstance(exc, requests.JSONDecodeError):
        return Transient(f"Salesforce answered {what} with something that is not JSON",
                         reason="bad_response")
    if isinstance(exc, requests.ConnectionError):
        return Transient(f"cannot reach Salesforce to {what}: {type(exc).__name__}",
                         reason="connection")
    return Transient(f"Salesforce call failed to {what}: {type(exc).__name__}",
                     reason="http")


def _failures(records: Sequence[tuple[str, str]],
              results: list[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = []
    for (sobject, record_id), result in zip(records, results, strict=True):
        if isinstance(result, dict) and result.get("success"):
            continue
        errors = error_items(result.get("errors")) if isinstance(result, dict) else []
        out.extend((sobject, record_id, error) for error in errors or [{"statusCode": "UNKNOWN"}])
    return out


def from_results(records: Sequence[tuple[str, str]], results: Any, *, what: str) -> None:
    """Raise for the failed records of an sObject Collections answer (one per record)."""
    if not isinstance(results, list) or len(results) != len(records):
        raise Transient(f"Salesforce answered {what} with an unexpected result list",
                        reason="bad_response", body=results)
    failures = _failures(records, results)
    if not failures:
        return
    causes = [f for f in failures if _code(f[2]) != ROLLED_BACK] or failures
    codes = sorted({_code(error) for _, _, error in causes})
    detail = "; ".join(f"{sobject} {record_id}: {summary([error])}"
                       for sobject, record_id, error in causes[:5])
    message = (f"Salesforce refused to {what}: {len(causes)} record(s) failed, "
               f"the whole batch was rolled back: {detail}")
    body = [{"sobject": s, "id": i, **error} for s, i, error in causes]
    error_class = Transient if set(codes) <= TRANSIENT_CODES else InvalidPayload
    raise error_class(message, reason=",".join(codes), status=200, body=body)


@dataclass(frozen=True)
class RecordResult:
    """One record's outcome in an sObject Collections answer."""

    success: bool
    #: Salesforce's errors for the record (``statusCode``, ``message``, ``fields``).
    errors: tuple[dict[str, Any], ...] = ()

    @property
    def code(self) -> str:
        """The first error's code (``ENTITY_IS_DELETED``); empty for a success."""
        return _code(self.errors[0]) if self.errors else ("" if self.success else "UNKNOWN")

    @property
    def transient(self) -> bool:
        """A refusal that goes away on its own (a record lock): send it again later."""
        return not self.success and all(_code(e) in TRANSIENT_CODES for e in self.errors)

    @property
    def message(self) -> str:
        return summary(self.errors) or self.code


def record_results(count: int, results: Any, *, what: str) -> list[RecordResult]:
    """Each record's outcome, in order, from an ``allOrNone`` false answer."""
    if not isinstance(results, list) or len(results) != count:
        raise Transient(f"Salesforce answered {what} with an unexpected result list",
                        reason="bad_response", body=results)
    out = []
    for result in results:
        if isinstance(result, dict) and result.get("success"):
            out.append(RecordResult(True))
            continue
        items = error_items(result.get("errors")) if isinstance(result, dict) else []
        out.append(RecordResult(False, tuple(items or [{"statusCode": "UNKNOWN"}])))
    return out
