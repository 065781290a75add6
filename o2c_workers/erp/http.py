"""One HTTP attempt against the ERP, and the one place its outcomes become errors.

Every call goes through the fleet-wide limiter (one bucket: the ERP counts reads and writes
against one limit), carries explicit (connect, read) timeouts, and parses JSON with every
non-integer number as a ``Decimal``. Failures map onto ``o2c_workers.errors``:

====================================================  ========================================
outcome                                               error
====================================================  ========================================
429, or a ``TooManyRequestsError``/deadlock answer    Throttled (Retry-After), fleet paused
503 maintenance (Retry-After, or ``SessionStopped``)  Transient (Retry-After), fleet paused
other 5xx                                             Transient (Retry-After when given)
502/504 from a proxy, after a write was sent          UnknownOutcome
connection refused, connect timeout (never sent)      Transient
read timeout or dropped connection after a write      UnknownOutcome (after a read: Transient)
409 ``DuplicateEntryError``, 417 ``UniqueValid...``   Duplicate
401, 403                                              AuthError (never retried)
404                                                   NotFound
417 and other 4xx                                     BusinessError (category, remediation)
====================================================  ========================================

A maintenance 503 stays ``Transient``: for the call it is a passing fault like any 5xx
(retried with backoff, dead-lettered ``exhausted`` at the end), not a request to slow down.
What sets it apart is that the ERP said for how long it is away, for everyone: like a 429 it
pauses the whole fleet at the limiter, so the other workers wait there instead of each
finding out with a call of its own.

Credentials live only in ``TokenAuth``; they are never logged nor put in an error.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import redis
import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError

from o2c_workers import metrics
from o2c_workers.erp import mapping
from o2c_workers.errors import (
    AuthError,
    BusinessError,
    Duplicate,
    NotFound,
    O2CError,
    Throttled,
    Transient,
    UnknownOutcome,
)
from o2c_workers.ratelimit import Limiter, NullLimiter

log = logging.getLogger("o2c.erp.http")

#: Retry-After assumed for a 429 that names none, in seconds.
DEFAULT_THROTTLE_S = 1.0
#: Retry-After assumed for a maintenance answer that names none, in seconds: the fleet then
#: asks the ERP a few times a minute whether it is back, rather than once per task.
DEFAULT_MAINTENANCE_S = 10.0
#: The ``reason`` of a maintenance answer's error.
MAINTENANCE = "maintenance"
#: Most of an unreadable answer kept in an error, in characters.
MAX_BODY_CHARS = 1000
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TokenAuth(requests.auth.AuthBase):
    """Frappe's ``Authorization: token <api_key>:<api_secret>``, added at send time."""

    def __init__(self, api_key: SecretStr, api_secret: SecretStr) -> None:
        self._key = api_key
        self._secret = api_secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        value = f"token {self._key.get_secret_value()}:{self._secret.get_secret_value()}"
        request.headers["Authorization"] = value
        return request

    def __repr__(self) -> str:
        return "TokenAuth(**********)"


def dumps(payload: Any) -> bytes:
    """JSON for the ERP: a ``Decimal`` goes as its exact string, never through a float."""
    def default(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return str(obj)
        if isinstance(obj, dt.date):
            return obj.isoformat()
        raise TypeError(f"not JSON serializable: {type(obj).__name__}")

    return json.dumps(payload, default=default, separators=(",", ":")).encode()


def loads(raw: bytes) -> Any:
    return json.loads(raw, parse_float=Decimal)


def retry_after_s(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


class ErpHttp:
    """Single attempts against the ERP's REST API; retries are the caller's."""

    def __init__(
        self, base_url: str, auth: TokenAuth, *, connect_timeout_s: float, read_timeout_s: float,
        limiter: Limiter | NullLimiter | None = None, acquire_timeout_s: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.limiter = limiter or NullLimiter()
        self.acquire_timeout_s = acquire_timeout_s
        self._auth = auth
        self._owns_session = session is None
        self.session = session or _new_session()

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             body: Any = None) -> Any:
        """Send one request and return its parsed JSON answer, or raise a mapped error."""
        method = method.upper()
        try:
            with self.limiter.acquire(timeout_s=self.acquire_timeout_s):
                response = self._send(method, path, params, body)
        except redis.RedisError as exc:
            raise Transient(f"ERP limiter unavailable: {type(exc).__name__}",
                            reason="limiter:redis") from None
        return self._answer(method, path, response)

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def _send(self, method: str, path: str, params: dict[str, Any] | None,
              body: Any) -> requests.Response:
        started = time.monotonic()
        try:
            response = self.session.request(
                method, self.base_url + path, params=params, auth=self._auth,
                data=None if body is None else dumps(body), timeout=self.timeout,
                headers={"Accept": "application/json", "Content-Type": "application/json"},
                allow_redirects=False)
        except requests.RequestException as exc:
            metrics.erp_call(method, path, None, time.monotonic() - started)
            raise _connection_error(method, path, exc) from None
        elapsed_s = time.monotonic() - started
        metrics.erp_call(method, path, response.status_code, elapsed_s)
        log.debug("ERP %s %s → %s in %.0f ms", method, path, response.status_code,
                  elapsed_s * 1000)
        return response

    def _answer(self, method: str, path: str, response: requests.Response) -> Any:
        body = _body(response)
        if 200 <= response.status_code < 300:
            if isinstance(body, dict | list):
                return body
            cls = UnknownOutcome if method in _WRITES else Transient
            raise cls(f"ERP {method} {path}: unreadable answer", status=response.status_code,
                      body=body, reason="unreadable_answer")
        error = map_error(method, path, response.status_code, body,
                          retry_after_s(response.headers.get("Retry-After")))
        log.warning("ERP %s %s → %s %s: %s", method, path, response.status_code,
                    type(error).__name__, error.reason)
        if isinstance(error, Throttled):
            self.limiter.pause(error.retry_after_s or DEFAULT_THROTTLE_S,
                               reason=f"erp {response.status_code}")
        elif error.reason == MAINTENANCE:
            self.limiter.pause(error.retry_after_s or DEFAULT_MAINTENANCE_S,
                               reason=f"erp maintenance ({response.status_code})")
        raise error


def _new_session() -> requests.Session:
    session = requests.Session()
    # No hidden retries below ours: a retried POST must be a decision, not a default.
    adapter = HTTPAdapter(max_retries=0, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _body(response: requests.Response) -> Any:
    try:
        return loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return response.text[:MAX_BODY_CHARS]


def map_error(method: str, path: str, status: int, body: Any,
              retry_after: float | None) -> O2CError:
    """The error of one non-2xx answer."""
    exc_type = mapping.exc_type_of(body)
    message = mapping.message_of(body, fallback=f"HTTP {status}")
    label = f"{status} {exc_type}" if exc_type else str(status)
    text = f"ERP {method} {path}: {label}: {message}"
    common: dict[str, Any] = {"status": status, "body": body, "retry_after_s": retry_after}
    if status == 429 or exc_type in mapping.THROTTLE_EXC_TYPES:
        common["retry_after_s"] = retry_after if retry_after is not None else DEFAULT_THROTTLE_S
        return Throttled(text, reason=exc_type or "throttled", **common)
    if status == 409 or exc_type in mapping.DUPLICATE_EXC_TYPES:
        return Duplicate(text, reason=exc_type or "duplicate", **common)
    if status in (401, 403):
        return AuthError(text, reason=exc_type or "auth", **common)
    if status == 404:
        return NotFound(text, reason=exc_type or "not_found", **common)
    if status in (502, 504) and method in _WRITES:
        return UnknownOutcome(text, reason=f"gateway_{status}", **common)
    if status == 503 and (retry_after is not None
                          or exc_type in mapping.MAINTENANCE_EXC_TYPES):
        common["retry_after_s"] = retry_after if retry_after is not None \
            else DEFAULT_MAINTENANCE_S
        return Transient(text, reason=MAINTENANCE, **common)
    if status >= 500:
        return Transient(text, reason=f"http_{status}", **common)
    category = mapping.categorize(exc_type, message)
    return BusinessError(text, reason=exc_type or f"http_{status}", category=category,
                         **common)


def _connection_error(method: str, path: str, exc: requests.RequestException) -> O2CError:
    kind = type(exc).__name__
    if _never_sent(exc):
        return Transient(f"ERP {method} {path}: not sent ({kind})", reason="connect")
    if method in _WRITES:
        return UnknownOutcome(f"ERP {method} {path}: sent, no answer ({kind})",
                              reason="no_answer")
    return Transient(f"ERP {method} {path}: no answer ({kind})", reason="no_answer")


def _never_sent(exc: BaseException) -> bool:
    """Whether ``exc`` happened while connecting, so the request never left."""
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError
                  | requests.exceptions.InvalidURL):
        return True
    if isinstance(exc, requests.ReadTimeout):
        return False
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectTimeoutError):  # NewConnectionError is one too
            return True
        linked = (*current.args, getattr(current, "reason", None), current.__cause__,
                  current.__context__)
        pending.extend(x for x in linked if isinstance(x, BaseException))
    return False
