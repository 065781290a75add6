"""Small WSGI plumbing: requests, answers and errors that carry their HTTP status."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from o2c_workers.errors import O2CError

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

REASONS = {
    200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
    411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Content", 500: "Internal Server Error", 503: "Service Unavailable",
}

XML = "text/xml; charset=utf-8"
JSON = "application/json"


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, data: Any, **kw: Any) -> Response:
        return cls(status, json.dumps(data, default=str).encode(), JSON, **kw)

    def __call__(self, start_response: StartResponse) -> Iterable[bytes]:
        headers = [("Content-Type", self.content_type), ("Content-Length", str(len(self.body))),
                   *self.headers]
        start_response(f"{self.status} {REASONS.get(self.status, '')}".rstrip(), headers)
        return [self.body]


class HTTPError(O2CError):
    """An answer other than success; the handler decides how its body is shaped."""

    status: int

    def __init__(self, status: int, message: str, *, headers: list[tuple[str, str]] | None = None):
        super().__init__(message, status=status)
        self.headers = headers or []


class Request:
    def __init__(self, environ: Environ) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET").upper()
        self.path: str = environ.get("PATH_INFO", "") or "/"
        self.query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)

    def header(self, name: str) -> str | None:
        key = "HTTP_" + name.upper().replace("-", "_")
        if name.lower() == "content-type":
            key = "CONTENT_TYPE"
        value = self.environ.get(key)
        return str(value) if value is not None else None

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def read_body(self, limit: int) -> bytes:
        """The body, refusing (413) more than ``limit`` bytes without reading past it."""
        length_header = self.environ.get("CONTENT_LENGTH") or ""
        stream = self.environ["wsgi.input"]
        if length_header.strip():
            try:
                length = int(length_header)
            except ValueError:
                raise HTTPError(400, "invalid Content-Length") from None
            if length > limit:
                raise HTTPError(413, f"body of {length} bytes exceeds the limit of {limit}")
            return bytes(stream.read(length)) if length else b""
        # No length (chunked): read at most one byte past the limit.
        chunks, total = [], 0
        while total <= limit:
            chunk = stream.read(min(65536, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise HTTPError(413, f"body exceeds the limit of {limit} bytes")
        return b"".join(chunks)

    def basic_password(self) -> str | None:
        value = self.header("Authorization") or ""
        scheme, _, credentials = value.partition(" ")
        if scheme.lower() != "basic" or not credentials:
            return None
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]

    def bearer_token(self) -> str | None:
        value = self.header("Authorization") or ""
        scheme, _, token = value.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None


def constant_time_equal(given: str | None, expected: str) -> bool:
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def check_admin_token(request: Request, token: str) -> None:
    """404 when no admin token is configured, 401 unless the bearer token matches."""
    if not token:
        raise HTTPError(404, f"no such path: {request.path}")
    if not constant_time_equal(request.bearer_token(), token):
        raise HTTPError(401, "missing or wrong admin token",
                        headers=[("WWW-Authenticate", 'Bearer realm="o2c-admin"')])
