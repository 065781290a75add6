"""What every strategy offers the limiter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal["rate", "concurrency"]


@dataclass(frozen=True)
class Attempt:
    """The answer to one try: taken, or how long until trying again makes sense."""

    ok: bool
    #: Sleep this long before the next try.
    wait_s: float = 0.0
    #: When a slot is expected at the latest (the ``retry_after_s`` of a ``Throttled``).
    expected_s: float = 0.0


TAKEN = Attempt(ok=True)


class Strategy(Protocol):
    """One limit. ``key`` picks a bucket (an endpoint class); ``token`` names one acquire."""

    kind: Kind

    def try_acquire(self, key: str, token: str) -> Attempt:
        """Take a slot now, or say when to try again. Never blocks."""

    def renew(self, key: str, token: str) -> None:
        """Restart the slot's lifetime (after a wait), if it has one."""

    def release(self, key: str, token: str) -> None:
        """Give the slot back, if slots are given back."""

    def in_use(self, key: str) -> int:
        """Slots taken now: requests in the window, or leases in flight."""
