"""JSON logs that carry the transaction's trace key, with secrets and personal data masked.

Extra fields are masked by name (``o2c_workers.redact``: tokens, passwords, names,
addresses, e-mail, phone), and the message and every text value for secrets inside them.
E-mail-like text in a message stays: Celery's node names (``celery@host.example.com``)
are written that way; personal data goes in fields, where it is masked by name.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import orjson

from o2c_workers.redact import redact, redact_text

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "o2c_log_context", default=None
)

#: LogRecord attributes that are not user data.
_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def bind(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Add fields (``trace_key``, ``task``) to every log line of the current context."""
    current = dict(_context.get() or {})
    current.update({k: v for k, v in fields.items() if v is not None})
    return _context.set(current)


def unbind(token: contextvars.Token[dict[str, Any] | None] | None = None) -> None:
    if token is not None:
        _context.reset(token)
    else:
        _context.set(None)


def bound() -> dict[str, Any]:
    return dict(_context.get() or {})



class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context and extras."""

    _second: int = -1
    _stamp: str = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage(), emails=False),
        }
        context = _context.get()
        if context:
            entry.update(context)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if extras:
            entry.update(redact(extras, emails=False))
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info), emails=False)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the trace key in front."""

    def format(self, record: logging.LogRecord) -> str:
        context = bound()
        prefix = f"[{context['trace_key']}] " if "trace_key" in context else ""
        # The message with its arguments filled in, masked; the record itself is left as
        # it is for the other handlers.
        masked = logging.makeLogRecord(record.__dict__)
        masked.msg = redact_text(prefix + record.getMessage(), emails=False)
        masked.args = None
        masked.exc_text = None
        return super().format(masked)

    def formatException(self, ei: Any) -> str:
        return redact_text(super().formatException(ei), emails=False)


def skip_unused_record_fields() -> None:
    """Stop filling in the LogRecord fields our formats never print.

    The standard library's documented optimizations ("Optimization" in the logging HOWTO):
    no caller lookup (a stack walk), no thread or multiprocessing names. The receiver logs a
    line per notification on its hot path, where these cost about as much as formatting
    the line. The process id stays: gunicorn's own log lines print it.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False


def configure(*, level: str = "INFO", json_lines: bool = True) -> None:
    """Send every log line of the process to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_lines else TextFormatter("%(asctime)s %(levelname)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
