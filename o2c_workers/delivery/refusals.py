"""What a consumer does while Redis is up but refuses writes (OOM, READONLY, MISCONF, ...).

A take (``BLMOVE``, or ``LMOVE`` in the fetch script) needs memory and a writable primary;
an ack (``LREM``) or a requeue needs a writable primary. A refused command moves nothing,
so the message is still where it was: its queue, or the consumer's held list. The consumer
then sends no take for ``PAUSE_S`` (the event loop is never blocked, Redis never spun on),
keeps the refused acks and requeues, and settles them before its next take. Without this,
kombu treats the error answer as unrecoverable and the worker exits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic

import redis

from o2c_workers.infrastructure import is_infrastructure

log = logging.getLogger("o2c.delivery")

#: After a refusal, no take is sent for this long, in seconds.
PAUSE_S = 1.0


@dataclass
class Refusals:
    """One consumer's view of Redis refusing: when to ask again, and what is unsettled."""

    #: Acks and requeues Redis refused: (queue, message exactly as held, requeue).
    unsettled: list[tuple[str, bytes, bool]] = field(default_factory=list)
    _until: float = 0.0
    _reason: str | None = None

    @property
    def paused(self) -> bool:
        return monotonic() < self._until

    def refused(self, exc: redis.ResponseError) -> None:
        """Note a refusal; re-raise anything that is not Redis refusing (a defect)."""
        if not is_infrastructure(exc):
            raise exc
        self._until = monotonic() + PAUSE_S
        reason = str(exc).split(".", 1)[0]
        if self._reason is None:
            log.warning("Redis refuses writes; taking no message for %.0f s at a time, "
                        "nothing is lost: %s", PAUSE_S, reason)
        self._reason = reason

    def accepted(self) -> None:
        """Redis took a command again."""
        if self._reason is not None:
            log.warning("Redis takes writes again (%s)", self._reason)
            self._reason = None

    def settle(self, settle: Callable[[str, bytes, bool], None]) -> bool:
        """Settle the refused acks and requeues with ``settle``, oldest first; False while
        Redis still refuses."""
        while self.unsettled:
            try:
                settle(*self.unsettled[0])
            except redis.ResponseError as exc:
                self.refused(exc)
                return False
            self.unsettled.pop(0)
        return True
