"""The quick, in-call retries: seconds long, for Throttled and Transient only.

Anything longer (a ``Retry-After`` beyond ``max_retry_after_s``, or the attempts spent) is
raised to the caller, whose Celery retry waits minutes, then dead-letters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception

from o2c_workers.backoff import compute_backoff
from o2c_workers.errors import Throttled, Transient

log = logging.getLogger("o2c.erp.retry")


def retryable(exc: BaseException) -> bool:
    """Throttled by the ERP, or Transient; a limiter timeout (the fleet is saturated)
    goes straight back to the caller."""
    if isinstance(exc, Throttled):
        return not exc.reason.startswith("limiter:")
    return isinstance(exc, Transient)


@dataclass(frozen=True)
class QuickRetry:
    """How many tries one call gets, and how long it may wait between them (seconds)."""

    attempts: int = 3
    base_s: float = 0.2
    cap_s: float = 2.0
    #: A ``Retry-After`` longer than this is left to the caller.
    max_retry_after_s: float = 5.0

    def retrying(self) -> Retrying:
        """A tenacity ``Retrying`` that re-raises the last error when it gives up."""
        return Retrying(retry=retry_if_exception(retryable), stop=self._stop, wait=self._wait,
                        before_sleep=_log_retry, reraise=True)

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.attempts:
            return True
        after = _retry_after(state)
        return after is not None and after > self.max_retry_after_s

    def _wait(self, state: RetryCallState) -> float:
        delay = compute_backoff(state.attempt_number, base_s=self.base_s, cap_s=self.cap_s)
        after = _retry_after(state)
        return delay if after is None else max(delay, min(after, self.max_retry_after_s))


def _retry_after(state: RetryCallState) -> float | None:
    exc = state.outcome.exception() if state.outcome is not None else None
    value = getattr(exc, "retry_after_s", None)
    return float(value) if value is not None else None


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.info("ERP call failed (%s: %s); try %d again in %.2f s", type(exc).__name__,
             getattr(exc, "reason", ""), state.attempt_number + 1, wait)
