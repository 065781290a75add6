"""Waiting is not failing: a step held back by a far side comes back later, no attempt spent.

A ``Throttled`` step (the fleet's limiter had no ERP slot within a step's wait at it, or the
ERP kept answering 429 past the quick retries, or Salesforce asked us to slow down) is
published again with a countdown and the *same* retry count, so the attempts of the retry
policy count only real failures. Two message headers carry the wait from one run to the
next:

=========================  ==========================================================
header                     what
=========================  ==========================================================
``o2c_waits``              how many times the step has waited so far
``o2c_waiting_since``      epoch seconds of its first wait
=========================  ==========================================================

A wait is not progress: a transaction whose step waits longer than ``O2C_STALL_AFTER_S``
shows as stalled (``o2c_stalled_transactions``), and one that has waited longer than
``O2C_MAX_WAIT_H`` is dead-lettered ``throttled`` (never ``exhausted``) for people to look at
the limits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

WAITS_HEADER = "o2c_waits"
WAITING_SINCE_HEADER = "o2c_waiting_since"
#: The shortest countdown of a wait, in seconds: a slot that frees sooner goes to a step
#: already waiting at the limiter, so coming back sooner would only cost a round trip.
MIN_WAIT_S = 1.0
#: Upper bound of the random delay added to a wait, in seconds, so that the steps a pause
#: sent away do not all come back in the same millisecond.
WAIT_JITTER_S = 1.0


@dataclass(frozen=True)
class Wait:
    """One more wait of a step: how many so far (this one included), since when, how long."""

    count: int
    #: Epoch seconds of the step's first wait.
    since: float
    countdown_s: float

    def waited_s(self, now: float) -> float:
        return max(0.0, now - self.since)

    def headers(self) -> dict[str, Any]:
        return {WAITS_HEADER: self.count, WAITING_SINCE_HEADER: self.since}


def waits_of(request: Any) -> tuple[int, float | None]:
    """The waits a task request carries so far, and the epoch seconds of the first."""
    headers = getattr(request, "headers", None) or {}

    def read(name: str) -> Any:
        value = getattr(request, name, None)
        return headers.get(name) if value is None else value

    count, since = read(WAITS_HEADER), read(WAITING_SINCE_HEADER)
    try:
        return int(count or 0), (float(since) if since is not None else None)
    except (TypeError, ValueError):
        return 0, None


def countdown_s(retry_after_s: float | None, *, limit_s: float,
                rng: random.Random | None = None) -> float:
    """When a held-back step comes back: the far side's ``Retry-After`` (at least
    ``MIN_WAIT_S``) plus jitter, never past ``limit_s``."""
    base = max(MIN_WAIT_S, retry_after_s or 0.0)
    return min(float(limit_s), base + (rng or random).uniform(0.0, WAIT_JITTER_S))


def next_wait(request: Any, *, retry_after_s: float | None, now: float, limit_s: float,
              rng: random.Random | None = None) -> Wait:
    """The wait a step held back now starts."""
    count, since = waits_of(request)
    return Wait(count=count + 1, since=now if since is None else since,
                countdown_s=countdown_s(retry_after_s, limit_s=limit_s, rng=rng))
