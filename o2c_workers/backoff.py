"""Retry policy as data, and the one backoff function."""

from __future__ import annotations

import random
from dataclasses import dataclass


def compute_backoff(
    attempt: int, *, base_s: float, cap_s: float, jitter: bool = True,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): capped exponential.

    With jitter the wait is drawn uniformly from [half, whole] of the exponential value, so
    a fleet that failed together does not retry together, and never exceeds ``cap_s``.
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    exponent = min(attempt - 1, 32)
    delay: float = min(cap_s, base_s * 2.0**exponent)
    if jitter:
        delay = float((rng or random).uniform(delay / 2, delay))
    return delay


@dataclass(frozen=True)
class RetryPolicy:
    """How one step retries: attempts in all, backoff base and cap (seconds)."""

    max_attempts: int = 8
    base_s: float = 2.0
    cap_s: float = 300.0

    def countdown(self, attempt: int, *, retry_after_s: float | None = None,
                  limit_s: float | None = None) -> float:
        """Wait before the next try; honours ``Retry-After`` and stays under ``limit_s``."""
        delay = compute_backoff(attempt, base_s=self.base_s, cap_s=self.cap_s)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        if limit_s is not None:
            delay = min(delay, limit_s)
        return delay
