"""The one base task of the fleet: retries, dead letters and resolution, written once."""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any, NoReturn

from celery import Task, current_task
from celery.exceptions import Ignore, Reject, Retry, SoftTimeLimitExceeded, TimeLimitExceeded

from config.routes import DEFAULT_ROUTES
from o2c_workers import catalogue, compat, metrics, outage, poison, sentry, timeline, waiting
from o2c_workers.backoff import RetryPolicy
from o2c_workers.dlq import DeadLetter
from o2c_workers.errors import DeadLettered, NotOurs, O2CError, Throttled, Transient, WorkerLost
from o2c_workers.infrastructure import is_infrastructure
from o2c_workers.runtime import Runtime, get_runtime
from o2c_workers.signals import TRACE_HEADER, short_reprs, trace_key_of

log = logging.getLogger("o2c.task")


class O2CTask(Task):  # type: ignore[misc]
    """Late acks, ignored results, trace key in logs, retries then dead letters."""

    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
    #: A step returns the transaction's whole context; the worker's log line and Flower's
    #: task-succeeded event show only this many characters of it (no personal data).
    resultrepr_maxsize = 12
    #: Attempts, backoff base and cap for retryable errors; None takes the settings'.
    retry_policy: RetryPolicy | None = None
    #: Raised once the step is in the dead-letter queue: Celery logs it without a traceback
    #: and acks the message, Flower shows the task failed, Sentry's Celery integration
    #: leaves it alone (``_dead_letter`` reported it once, by the business-error policy).
    throws = (DeadLettered,)
    #: Notes how a lost pool process died, for the poison-message count.
    Request = "o2c_workers.poison:LostWorkerRequest"

    @property
    def domain(self) -> str:
        return str(self.name).split(".")[1]

    def apply_async(self, args: Any = None, kwargs: Any = None, task_id: str | None = None,
                    producer: Any = None, link: Any = None, link_error: Any = None,
                    shadow: str | None = None, **options: Any) -> Any:
        """Publish with the arguments shown as ``<task trace_key>``, never the payload.

        Celery otherwise writes ``repr(args)`` (the transaction's records, personal data
        included) into the message and into the ``task-sent`` event that Flower shows. A
        retry and the next step of a chain are published through here. The
        ``before_task_publish`` handler shortens the message's copy too, but it cannot reach
        the event.
        """
        running = current_task.request if current_task else None
        trace = (options.get("headers") or {}).get(TRACE_HEADER) or trace_key_of(running)
        for option, short in zip(("argsrepr", "kwargsrepr"),
                                 short_reprs(self.name, trace, kwargs), strict=True):
            if options.get(option) is None:
                options[option] = short
        try:
            return super().apply_async(args, kwargs, task_id, producer, link, link_error,
                                       shadow, **options)
        except Exception as exc:
            # The next step of a chain, published once the current one is done: if Redis
            # refuses it past the publish retries, the current step's message goes back
            # (and runs again, idempotent) rather than being acked with its successor lost.
            if running is not None and is_infrastructure(exc):
                raise current_task.hand_back(exc, f"cannot publish {self.name}: {exc}") \
                    from exc
            raise

    @property
    def trace_key(self) -> str:
        key = trace_key_of(self.request)
        if key:
            return key
        payload = self.request.args[0] if self.request.args else None
        if isinstance(payload, dict) and payload.get("trace_key"):
            return str(payload["trace_key"])
        return f"task:{self.request.id}"

    @property
    def runtime(self) -> Runtime:
        return get_runtime()

    @property
    def policy(self) -> RetryPolicy:
        if self.retry_policy is not None:
            return self.retry_policy
        s = self.runtime.settings
        return RetryPolicy(max_attempts=s.retry_max_attempts, base_s=s.retry_base_s,
                           cap_s=s.retry_cap_s)

    def record(self, event: str, *, trace_key: str | None = None, milestone: str | None = None,
               at: float | None = None, **details: Any) -> None:
        """Append to the transaction's timeline (and stamp a milestone once)."""
        runtime = self.runtime
        key = trace_key or self.trace_key
        at = time.time() if at is None else at
        timeline.record(runtime.redis, runtime.prefix, key, event,
                        milestone=milestone, at=at, task=self.name, **details)
        if milestone in ("booked", "invoiced"):
            stamps = timeline.milestones(runtime.redis, runtime.prefix, key)
            # Only the run that stamped the milestone observes it (not a redelivery).
            if stamps.get(milestone) == at:
                metrics.milestone_latency(milestone, stamps)

    def hand_back(self, exc: BaseException, reason: str | None = None) -> Reject:
        """What to raise to hand this run's message back to its queue after ``exc`` (Redis
        or the broker failing). On RabbitMQ a return counts toward the delivery limit, so
        the run first holds its message until Redis takes writes (``o2c_workers.outage``)."""
        runtime = self.runtime
        # Only inside a run: the worker's main process (``on_failure``) never waits.
        started_at = getattr(self.request, "o2c_started_at", None)
        if started_at is not None and runtime.settings.broker_kind == "amqp":
            budget = outage.hold_budget_s(started_at=started_at,
                                          soft_time_limit_s=self._soft_time_limit_s())
            outage.hold_until_writable(runtime.redis, runtime.prefix, hold_s=budget)
        return Reject(reason or str(exc), requeue=True)

    def _soft_time_limit_s(self) -> float | None:
        limit = self.request.timelimit[1] if self.request.timelimit else None
        return float(limit or self.soft_time_limit or self.app.conf.task_soft_time_limit or 0)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started_at = time.time()
        self.request.o2c_started_at = started_at
        try:
            self._refuse_poison(args, kwargs)
            result = super().__call__(*args, **kwargs)
            self.resolve_dead_letters(filed_before=started_at)
            return result
        except (Retry, Ignore, Reject, DeadLettered):
            raise
        except NotOurs as exc:
            self._ignore(exc, filed_before=started_at)
            return None
        except O2CError as exc:
            raise self._handle_error(exc, args, kwargs) from None
        except SoftTimeLimitExceeded as exc:
            raise self._handle_error(Transient(f"step exceeded its time limit: {exc}"), args,
                                     kwargs) from None
        except Exception as exc:
            if is_infrastructure(exc):
                log.warning("state store unavailable, returning the message: %s", exc)
                raise self.hand_back(exc) from exc
            # From None: the entry keeps the traceback; Flower's copy names only the entry.
            raise self._dead_letter(
                exc, args, kwargs, category=catalogue.UNEXPECTED,
                remediation=catalogue.remediation(catalogue.UNEXPECTED)) from None
        finally:
            self._run_ended(self.request.id)

    def end_chain(self) -> None:
        """The transaction ends with this step: publish none of the steps after it."""
        self.request.chain = None

    def _ignore(self, exc: NotOurs, *, filed_before: float) -> None:
        """The document is not ours: the step succeeds doing nothing, counted and on the
        timeline; no dead letter, no Sentry event."""
        log.info("ignored: %s", exc.message, extra={"reason": exc.reason})
        metrics.ignored(self.domain, exc.reason)
        try:
            self.record("ignored", reason=exc.reason)
            self.resolve_dead_letters(filed_before=filed_before)
        except Exception as store_error:
            if not is_infrastructure(store_error):
                raise
            raise self.hand_back(store_error) from store_error

    def _refuse_poison(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Count this run in; dead-letter the message instead if its earlier runs died with
        their process ``O2C_MAX_WORKER_LOST`` times (``o2c_workers.poison``)."""
        if not self.request.id:
            return
        runtime = self.runtime
        runs = poison.started(runtime.redis, runtime.prefix, str(self.request.id))
        if runs.lost < runtime.settings.max_worker_lost:
            return
        exit_text = runs.last_exit or "not seen: the whole worker went down"
        lost = WorkerLost(f"the process running this step was lost {runs.lost} times in a "
                          f"row (last exit: {exit_text}); not run again")
        raise self._dead_letter(lost, args, kwargs, category=catalogue.WORKER_LOST,
                                remediation=lost.remediation, attempts=runs.lost)

    def _run_ended(self, task_id: str | None) -> None:
        """The run ended without its process dying: drop its poison-message count."""
        if not task_id:
            return
        try:
            poison.finished(self.runtime.redis, self.runtime.prefix, task_id)
        except Exception as exc:
            if not is_infrastructure(exc):
                raise
            log.warning("cannot clear the run count of %s: %s", task_id, exc)

    def resolve_dead_letters(self, *, filed_before: float) -> None:
        """This step succeeded: its own dead letters of this trace key, filed before it
        started, are resolved by it (another step's, or a newer one, stay as they are)."""
        resolved = self.runtime.dead_letters.resolve(
            self.trace_key, task=self.name, filed_before=filed_before,
            resolved_by=str(self.request.id))
        if resolved:
            log.info("resolved %d dead letter(s) by a later success", len(resolved),
                     extra={"dead_letters": resolved})

    def _handle_error(self, exc: O2CError, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> DeadLettered:
        """Wait out a throttle or retry a retryable error (both raise ``Retry``); else file
        it and return what to raise."""
        if isinstance(exc, Throttled):
            return self._wait(exc, args, kwargs)
        if exc.retryable:
            attempt = self.request.retries + 1
            policy = self.policy
            if attempt < policy.max_attempts:
                countdown = policy.countdown(
                    attempt, retry_after_s=exc.retry_after_s,
                    limit_s=self.runtime.settings.max_countdown_s,
                )
                log.info("retrying in %.1fs after %s (attempt %d of %d)", countdown,
                         type(exc).__name__, attempt, policy.max_attempts,
                         extra={"reason": exc.reason})
                self._publish_again(exc, countdown_s=countdown, retries=attempt,
                                    counter="retries")
            return self._dead_letter(exc, args, kwargs, category=catalogue.EXHAUSTED,
                                     remediation=exc.remediation)
        return self._dead_letter(exc, args, kwargs, category=exc.category,
                                 remediation=exc.remediation)

    def _wait(self, exc: Throttled, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> DeadLettered:
        """Held back by a far side: come back later without spending an attempt (promise
        11); once the step has waited ``O2C_MAX_WAIT_H`` in all, dead-letter it
        ``throttled`` (never ``exhausted``)."""
        settings = self.runtime.settings
        now = time.time()
        wait = waiting.next_wait(self.request, retry_after_s=exc.retry_after_s, now=now,
                                 limit_s=settings.max_countdown_s)
        if wait.waited_s(now) >= settings.max_wait_s:
            log.warning("held back for %.0f s (%d waits), past O2C_MAX_WAIT_H: dead-lettering",
                        wait.waited_s(now), wait.count - 1, extra={"reason": exc.reason})
            return self._dead_letter(exc, args, kwargs, category=catalogue.THROTTLED,
                                     remediation=exc.remediation)
        log.info("held back (%s): again in %.1fs, no attempt spent (wait %d, waiting %.0fs)",
                 type(exc).__name__, wait.countdown_s, wait.count, wait.waited_s(now),
                 extra={"reason": exc.reason})
        metrics.step_wait(self.domain)
        self._publish_again(exc, countdown_s=wait.countdown_s, retries=self.request.retries,
                            counter="waits", headers=wait.headers())

    def _publish_again(self, exc: O2CError, *, countdown_s: float, retries: int, counter: str,
                       headers: dict[str, Any] | None = None) -> NoReturn:
        """Publish this request again after ``countdown_s`` with ``retries`` as its attempt
        count, then end this run as retried (acked; never reported to Sentry).

        Celery's ``self.retry`` would always count an attempt, obey the task's
        ``max_retries`` (3 by default, under a policy of 8 attempts: the fourth retry raised
        the error out of the step and lost it), and turn a failed publish into a reject
        that drops the message. A failure to publish here hands the message back instead.
        """
        request = self.request
        countdown_s = compat.native_delay_countdown(
            countdown_s, broker_kind=self.runtime.settings.broker_kind)
        options: dict[str, Any] = {"countdown": countdown_s, "retries": retries}
        if headers:
            options["headers"] = {**(request.headers or {}), **headers}
        signature = self.signature_from_request(request, **options)
        try:
            timeline.bump(self.runtime.redis, self.runtime.prefix, self.trace_key, counter)
            signature.apply_async()
        except Exception as publish_error:
            if not is_infrastructure(publish_error):
                raise
            log.warning("cannot publish the step again, returning the message: %s",
                        publish_error)
            raise self.hand_back(publish_error) from publish_error
        raise Retry(exc=exc, when=countdown_s, sig=signature)

    def on_failure(self, exc: BaseException, task_id: str, args: tuple[Any, ...],
                   kwargs: dict[str, Any], einfo: Any) -> None:
        """A hard time limit kills the step's process; the worker's main process then lands
        here (every other failure was dead-lettered inside the step). File it, so the late
        ack that follows loses nothing."""
        if isinstance(exc, TimeLimitExceeded):
            try:
                self._dead_letter(exc, args, kwargs, category=catalogue.TIMEOUT,
                                  remediation=catalogue.remediation(catalogue.TIMEOUT))
            except Reject:
                log.error("cannot store the dead letter of a timed-out step", exc_info=True)
            self._run_ended(task_id)

    def _remaining_chain(self) -> list[str]:
        """The steps that were to follow this one: from the message, or (where the message
        is not at hand, after a hard time limit) from the route this task belongs to."""
        chain = self.request.chain
        if chain:
            return [sig["task"] for sig in reversed(chain)]
        for route in DEFAULT_ROUTES:
            if self.name in route.tasks:
                return list(route.tasks[route.tasks.index(self.name) + 1:])
        return []

    def _dead_letter(self, exc: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                     category: str, remediation: str,
                     attempts: int | None = None) -> DeadLettered:
        """File the step in the dead-letter queue and report it; if that fails, hand the
        message back. Returns the exception that ends the task."""
        runtime = self.runtime
        now = time.time()
        payload = args[0] if args else None
        from_args = payload.get("trace_key") if isinstance(payload, dict) else None
        entry = DeadLetter(
            # After a hard time limit the request is not at hand: the payload still is.
            trace_key=trace_key_of(self.request) or from_args or self.trace_key,
            domain=self.domain,
            task=self.name,
            args=list(args),
            kwargs=dict(kwargs),
            chain=self._remaining_chain(),
            payload=args[0] if len(args) == 1 else list(args),
            error_class=type(exc).__name__,
            category=category,
            message=str(exc),
            remediation=remediation,
            attempts=self.request.retries + 1 if attempts is None else attempts,
            first_failed_at=now,
            last_failed_at=now,
            traceback="".join(traceback.format_exception(exc)),
        )
        try:
            runtime.dead_letters.add(entry)
            timeline.record(runtime.redis, runtime.prefix, entry.trace_key, "dead_lettered",
                            task=self.name, category=category, dead_letter=entry.id,
                            error=type(exc).__name__)
        except Exception as store_error:
            if not is_infrastructure(store_error):
                raise
            log.error("cannot store dead letter, returning the message: %s", store_error)
            raise self.hand_back(store_error) from store_error
        log.warning("dead-lettered: %s", exc, extra={
            "category": category, "dead_letter": entry.id, "attempts": entry.attempts,
        })
        metrics.dead_letter(entry.domain, category)
        sentry.report_dead_letter(
            exc, trace_key=entry.trace_key, domain=entry.domain, category=category,
            dead_letter=entry.id,
            report_business=runtime.settings.sentry_report_business_errors)
        return DeadLettered(category=category, error_class=entry.error_class,
                            dead_letter=entry.id)
