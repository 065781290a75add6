"""Celery signal handlers of the fleet: written once, never per task, wired by ``connect``
(the Celery app does, when it is built), never by importing this module."""

from __future__ import annotations

import time
from typing import Any

from celery import signals
from celery.app.task import Context
from celery.utils.log import get_task_logger

from config import get_settings
from o2c_workers import compat, logs, metrics, sentry, sizing
from o2c_workers.errors import DeadLettered
from o2c_workers.runtime import build_runtime, check_erp_at_start, set_runtime

#: The message header that carries the transaction's trace key.
TRACE_HEADER = "trace_key"

log = get_task_logger(__name__)

#: Task states at postrun → the outcome label of ``o2c_tasks_total``. The base task raises
#: ``DeadLettered`` (a FAILURE) once a step is dead-lettered, and ``Reject`` to hand a
#: message back.
OUTCOMES = {"SUCCESS": "succeeded", "RETRY": "retried", "FAILURE": "failed",
            "REJECTED": "returned"}

#: Monotonic start of each running task, by task id (one entry per pool slot).
_started: dict[str, float] = {}


def trace_key_of(request: Context | None) -> str | None:
    """The trace key a task request carries, from its headers."""
    if request is None:
        return None
    value = getattr(request, TRACE_HEADER, None)
    if not value:
        headers = getattr(request, "headers", None) or {}
        value = headers.get(TRACE_HEADER)
    return str(value) if value else None


def carry_trace_key(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Copy the running task's trace key onto every message it publishes.

    Headers given to ``chain.apply_async`` reach only the first task, and a retry or the
    next step of a chain is published from inside the running task: this is where the
    key crosses over.
    """
    if headers is None or headers.get(TRACE_HEADER):
        return
    from celery import current_task

    if current_task:
        key = trace_key_of(current_task.request)
        if key:
            headers[TRACE_HEADER] = key


def short_reprs(task: str, key: str | None, kwargs: Any) -> tuple[str, str]:
    """What Flower and the worker log show for a task's arguments: ``<task key>``, never
    the payload (``key`` is the trace key, else whatever names the message)."""
    return (f"<{task} {key}>" if key else f"<{task}>"), ("{...}" if kwargs else "{}")


def safe_argsrepr(headers: dict[str, Any] | None = None, body: Any = None,
                  sender: str | None = None, **_: Any) -> None:
    """Show Flower (and the worker log) ``<task trace_key>``, never the payload.

    Celery writes ``repr(args)`` into every message it publishes itself (retries, the next
    step of a chain); those arguments hold the transaction's records. The receiver writes
    its own short forms and does not pass through here.
    """
    if headers is None or "argsrepr" not in headers:
        return
    task = headers.get("task") or sender or "task"
    kwargs = body[1] if isinstance(body, tuple | list) and len(body) > 1 else None
    headers["argsrepr"], headers["kwargsrepr"] = short_reprs(
        task, headers.get(TRACE_HEADER) or headers.get("id"), kwargs)


def bind_trace_key(task: Any = None, task_id: str | None = None, **_: Any) -> None:
    trace_key = trace_key_of(task.request if task else None)
    name = getattr(task, "name", None)
    logs.bind(trace_key=trace_key, task=name, task_id=task_id)
    sentry.tag_task(trace_key=trace_key, task_name=name)
    if task_id:
        _started[task_id] = time.monotonic()


def clear_trace_key(task: Any = None, task_id: str | None = None, state: str | None = None,
                    retval: Any = None, **_: Any) -> None:
    logs.unbind()
    started = _started.pop(task_id, None) if task_id else None
    name = getattr(task, "name", None)
    if name:
        outcome = "dead_lettered" if isinstance(retval, DeadLettered) \
            else OUTCOMES.get(state or "", str(state).lower())
        metrics.task_done(name, outcome,
                          None if started is None else time.monotonic() - started)


def setup_logging(**_: Any) -> None:
    settings = get_settings()
    logs.configure(level=settings.log_level, json_lines=settings.log_json)


def init_process(**_: Any) -> None:
    """Each prefork child builds its own connections (never shared across a fork), and
    looks at the ERP's setup."""
    runtime = build_runtime()
    set_runtime(runtime)
    check_erp_at_start(runtime)


def init_worker(**_: Any) -> None:
    """Sentry starts in the worker's main process; the pool's children inherit it."""
    compat.guard_unacked_restore_after_collect()
    sentry.init(get_settings(), component="worker")


def serve_metrics(**_: Any) -> None:
    """The main process serves the whole host's metrics (multiprocess mode), once the pool
    has started its children."""
    port = get_settings().metrics_port
    if port:
        metrics.serve(port)


#: Every handler, with the signal it answers.
HANDLERS: tuple[tuple[Any, Any], ...] = (
    (signals.before_task_publish, carry_trace_key),
    (signals.before_task_publish, safe_argsrepr),
    (signals.task_prerun, bind_trace_key),
    (signals.task_postrun, clear_trace_key),
    (signals.setup_logging, setup_logging),
    (signals.worker_process_init, init_process),
    (signals.worker_init, init_worker),
    (signals.celeryd_init, sizing.size_worker),
    (signals.worker_ready, sizing.log_sizing),
    (signals.worker_ready, serve_metrics),
)


def connect() -> None:
    """Wire every handler; a repeat is a no-op (one ``dispatch_uid`` per handler)."""
    for signal, handler in HANDLERS:
        signal.connect(handler, weak=False, dispatch_uid=f"o2c.{handler.__name__}")
