"""Celery signal handlers of the fleet: written once, never per task."""

from __future__ import annotations

from typing import Any

from celery import signals
from celery.app.task import Context
from celery.utils.log import get_task_logger

from config import get_settings
from o2c_workers import logs
from o2c_workers.runtime import build_runtime, set_runtime

#: The message header that carries the transaction's trace key.
TRACE_HEADER = "trace_key"

log = get_task_logger(__name__)


def trace_key_of(request: Context | None) -> str | None:
    """The trace key a task request carries, from its headers."""
    if request is None:
        return None
    value = getattr(request, TRACE_HEADER, None)
    if not value:
        headers = getattr(request, "headers", None) or {}
        value = headers.get(TRACE_HEADER)
    return str(value) if value else None


@signals.before_task_publish.connect
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


@signals.task_prerun.connect
def bind_trace_key(task: Any = None, task_id: str | None = None, **_: Any) -> None:
    logs.bind(
        trace_key=trace_key_of(task.request if task else None),
        task=getattr(task, "name", None),
        task_id=task_id,
    )


@signals.task_postrun.connect
def clear_trace_key(**_: Any) -> None:
    logs.unbind()


@signals.setup_logging.connect
def setup_logging(**_: Any) -> None:
    settings = get_settings()
    logs.configure(level=settings.log_level, json_lines=settings.log_json)


@signals.worker_process_init.connect
def init_process(**_: Any) -> None:
    """Each prefork child builds its own connections (never shared across a fork)."""
    set_runtime(build_runtime())
