"""Sentry for the receiver and the workers, on when ``O2C_SENTRY_DSN`` is set.

What is sent, and what is not:

- Unexpected exceptions of tasks (dead-lettered ``unexpected``, reported here once) and
  of the receiver, and ERROR log lines (logging integration); tagged with the trace key,
  the domain, the task and, for a dead letter, its error category.
- A retry is never an event (the Celery integration ignores ``Retry``); a retryable error
  is reported once, when its attempts are exhausted and it is dead-lettered.
- Business errors (category ``business``, ``credit_hold``, ``invalid_payload``, ...) are
  expected and owned by the teams the dead-letter queue names: reported only when
  ``O2C_SENTRY_REPORT_BUSINESS_ERRORS`` is on.
- Every event, transaction and breadcrumb passes through ``scrub`` (``o2c_workers.redact``:
  secret and personal fields by name, secrets and e-mail addresses in text); local
  variables, request bodies and task arguments are never collected.

``sentry-sdk`` is an optional extra (``o2c-workers[sentry]``): it is imported only when
``O2C_SENTRY_DSN`` is set, so an install without it runs with Sentry off.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from o2c_workers import catalogue
from o2c_workers.redact import MASK, redact

if TYPE_CHECKING:
    from config import Settings

log = logging.getLogger("o2c.sentry")

#: Event fields that are machine-made and never carry user data (left as they are).
_STRUCTURAL = ("event_id", "timestamp", "start_timestamp", "platform", "sdk", "type")

_enabled = False


def enabled() -> bool:
    return _enabled


def init(settings: Settings, *, component: str) -> bool:
    """Start the SDK for this process (``component`` is ``receiver`` or ``worker``)."""
    global _enabled
    if settings.sentry_dsn is None or not settings.sentry_dsn.get_secret_value():
        return False
    try:
        import sentry_sdk
        from sentry_sdk.integrations.celery import CeleryIntegration
        from sentry_sdk.integrations.logging import LoggingIntegration
    except ImportError as exc:
        raise RuntimeError(
            "O2C_SENTRY_DSN is set but sentry-sdk is not installed: "
            "install the extra, pip install 'o2c-workers[sentry]'") from exc
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.sentry_environment,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        # The SDK's Event type is a TypedDict of the same plain dicts.
        before_send=cast("Any", scrub),
        before_send_transaction=cast("Any", scrub),
        before_breadcrumb=cast("Any", scrub_breadcrumb),
        integrations=[
            CeleryIntegration(propagate_traces=True),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
        ],
    )
    sentry_sdk.set_tag("component", component)
    _enabled = True
    log.info("Sentry on for the %s", component)
    return True


def scrub(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mask secrets and personal data anywhere in an event (``before_send``)."""
    kept = {key: event[key] for key in _STRUCTURAL if key in event}
    cleaned: dict[str, Any] = redact({k: v for k, v in event.items() if k not in kept})
    request = cleaned.get("request")
    if isinstance(request, dict):
        for name in ("cookies", "data"):
            if name in request:
                request[name] = MASK
    return {**cleaned, **kept}


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    result: dict[str, Any] = redact(crumb)
    return result


def tag_task(*, trace_key: str | None, task_name: str | None) -> None:
    """Tag every event of the running task (the Celery integration scopes them per task)."""
    if not _enabled:
        return
    import sentry_sdk
    if trace_key:
        sentry_sdk.set_tag("trace_key", trace_key)
    if task_name:
        sentry_sdk.set_tag("task", task_name)
        parts = task_name.split(".")
        if len(parts) >= 3:
            sentry_sdk.set_tag("domain", parts[1])


def is_business(category: str) -> bool:
    return not catalogue.is_operational(category)


def report_dead_letter(exc: BaseException, *, trace_key: str, domain: str, category: str,
                       dead_letter: str, report_business: bool) -> None:
    """Send a dead-lettered error to Sentry when it is worth an alert, once: the exception
    that then ends the task (``DeadLettered``) is in the task's ``throws``, which the Celery
    integration does not report. A defect (``unexpected``) is grouped by its stack trace;
    the others by domain, category and error class."""
    if not _enabled:
        return
    import sentry_sdk
    sentry_sdk.set_tag("error_category", category)
    sentry_sdk.set_tag("dead_letter", dead_letter)
    if is_business(category) and not report_business:
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("trace_key", trace_key)
        scope.set_tag("domain", domain)
        scope.set_tag("error_category", category)
        scope.set_level("warning" if is_business(category) else "error")
        if category != catalogue.UNEXPECTED:
            scope.fingerprint = ["o2c-dead-letter", domain, category, type(exc).__name__]
        sentry_sdk.capture_exception(exc)


def report_receiver_dead_letter(*, trace_key: str, category: str, message: str,
                                report_business: bool) -> None:
    """A notification the receiver dead-lettered (invalid or unrouted): business-like."""
    if not _enabled or not report_business:
        return
    import sentry_sdk
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("trace_key", trace_key)
        scope.set_tag("domain", "receiver")
        scope.set_tag("error_category", category)
        scope.set_level("warning")
        sentry_sdk.capture_message(message)


def capture_receiver_error(exc: BaseException, *, path: str) -> None:
    if not _enabled:
        return
    import sentry_sdk
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("domain", "receiver")
        scope.set_tag("path", path)
        sentry_sdk.capture_exception(exc)
