"""Small helpers shared by tests: WSGI calls and reading messages off the queues."""

from __future__ import annotations

import base64
import io
import json
from typing import Any
from wsgiref.util import setup_testing_defaults

import redis


def call_wsgi(app: Any, method: str, path: str, body: bytes = b"", *,
              query: str = "", headers: dict[str, str] | None = None,
              content_length: int | None = None) -> tuple[int, dict[str, str], bytes]:
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update({
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body) if content_length is None else content_length),
        "CONTENT_TYPE": "text/xml; charset=UTF-8",
    })
    for name, value in (headers or {}).items():
        if name.lower() == "content-type":
            environ["CONTENT_TYPE"] = value
        else:
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    captured: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        captured["status"] = int(status.split()[0])
        captured["headers"] = dict(response_headers)

    chunks = app(environ, start_response)
    return captured["status"], captured["headers"], b"".join(chunks)


def queued(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """Decode every message waiting on a queue, oldest first."""
    out = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        args, kwargs, embed = json.loads(base64.b64decode(envelope["body"]))
        out.append({"headers": envelope["headers"], "args": args, "kwargs": kwargs,
                    "embed": embed, "properties": envelope["properties"]})
    return out
