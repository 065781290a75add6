"""Just enough request and response plumbing for the simulator's WSGI app."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

#: The largest request body read, in bytes.
MAX_BODY_BYTES = 10 * 1024 * 1024

StartResponse = Callable[..., Any]


class BadRequest(Exception):
    """A request body that is not the JSON it should be."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> Request:
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(min(length, MAX_BODY_BYTES)) if length > 0 else b""
        return cls(method=environ["REQUEST_METHOD"].upper(),
                   path=environ.get("PATH_INFO", "/") or "/",
                   query=parse_qs(environ.get("QUERY_STRING", "")), headers=headers, body=body)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body as JSON, numbers with a fraction as ``Decimal``."""
        if not self.body:
            return None
        try:
            return json.loads(self.body, parse_float=Decimal)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=_default, ensure_ascii=False).encode("utf-8")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        return cls(status, dumps(value), [("Content-Type", "application/json;charset=UTF-8")])

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        return cls(status)

    def finish(self, start_response: StartResponse) -> Iterable[bytes]:
        phrase = HTTPStatus(self.status).phrase
        headers = [*self.headers, ("Content-Length", str(len(self.body)))]
        start_response(f"{self.status} {phrase}", headers)
        return [self.body]
