"""The sending side of the outbox: claim what is due, send it in one call, settle it.

One flusher runs in each worker process (``o2c_workers.flusher_step``); any number may run
at once, since a claim leases its records to one of them. Per record, Salesforce's answer
decides: applied, settled; refused (``ENTITY_IS_DELETED``, a validation rule,
``INVALID_FIELD``...), a dead letter for that record only; locked, sent again later. A
failure of the whole call puts the batch back: a wait for Salesforce's limits
(``REQUEST_LIMIT_EXCEEDED``, 429) spends no try; a transient one (5xx, a timeout) spends
one, up to ``O2C_RETRY_MAX_ATTEMPTS``, then each record is dead-lettered ``exhausted``. A
whole call refused as malformed is split in halves until the record it is about is alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from o2c_workers import catalogue
from o2c_workers.backoff import compute_backoff
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.errors import AuthError, NotFound, O2CError, Throttled, Transient
from o2c_workers.salesforce.errors import RecordResult
from o2c_workers.writeback import failures
from o2c_workers.writeback.outbox import Outbox, Outcome, Pending, new_owner

log = logging.getLogger("o2c.writeback")

#: Longest sleep between two looks at the outbox (seconds): a full batch, or a dead
#: flusher's lease run out, is seen within it.
POLL_S = 0.25
#: Pause after an unexpected failure of a flush (Redis down), seconds.
ERROR_PAUSE_S = 1.0
#: Wait after a 403 REQUEST_LIMIT_EXCEEDED or 429 that named none (seconds).
LIMIT_WAIT_S = 60.0


class CollectionWriter(Protocol):
    def update_each(self, records: Sequence[tuple[str, str, dict[str, Any]]]
                    ) -> list[RecordResult]: ...


@dataclass(frozen=True)
class Retries:
    """How a batch that failed as a whole is tried again (the fleet's step retry policy)."""

    max_attempts: int = 8
    base_s: float = 2.0
    cap_s: float = 300.0


class Flusher:
    """Sends the outbox's due records to Salesforce; ``salesforce`` is built on first use."""

    def __init__(self, outbox: Outbox, *, salesforce: Callable[[], CollectionWriter],
                 dead_letters: DeadLetterStore, client: redis.Redis,
                 retries: Retries = Retries(), owner: str | None = None) -> None:
        self.outbox, self._salesforce = outbox, salesforce
        self.dead_letters, self.client = dead_letters, client
        self.retries = retries
        self.owner = owner or new_owner()

    def flush_once(self, *, force: bool = False) -> float | None:
        """Send one batch if one is due: 0 when it sent one, else the seconds until the
        oldest waiting record is due (None: nothing waits)."""
        claimed = self.outbox.claim(self.owner, force=force)
        if not isinstance(claimed, list):
            return claimed
        if not claimed:
            return 0.0
        try:
            outcomes = self._send(sorted(claimed, key=lambda p: (p.sobject, p.record_id)))
        except Exception:
            # A defect, or a client that cannot be built: hand the claim back at once
            # rather than hold it for a lease, then let the caller log it.
            self.outbox.settle(self.owner, [Outcome(p, "retry", ERROR_PAUSE_S, counts=False)
                                            for p in claimed])
            raise
        for outcome in outcomes:
            if outcome.result == "dead":
                self._file(outcome)
        self.outbox.settle(self.owner, outcomes)
        return 0.0

    def drain(self) -> int:
        """Send everything that waits now, due or not (batches sent)."""
        batches = 0
        while self.flush_once(force=True) == 0.0:
            batches += 1
        return batches

    def run(self, stop: threading.Event) -> None:
        """Flush until ``stop`` is set."""
        while not stop.is_set():
            try:
                wait = self.flush_once()
            except Exception:
                log.exception("write-back flush failed; its records stay in the outbox")
                wait = ERROR_PAUSE_S
            if wait != 0.0:
                stop.wait(POLL_S if wait is None else min(wait, POLL_S))

    # --- one call ---------------------------------------------------------------------

    def _send(self, batch: list[Pending]) -> list[Outcome]:
        try:
            results = self._salesforce().update_each(
                [(p.sobject, p.record_id, dict(p.fields)) for p in batch])
        except Throttled as exc:
            wait_s = exc.retry_after_s or LIMIT_WAIT_S
            log.warning("Salesforce limits: %d write-back(s) wait %.0f s: %s", len(batch),
                        wait_s, exc)
            return [Outcome(p, "retry", wait_s, counts=False) for p in batch]
        except Transient as exc:
            return [self._again(p, exc) for p in batch]
        except AuthError as exc:
            return [self._dead(p, catalogue.AUTH, exc) for p in batch]
        except O2CError as exc:
            if len(batch) > 1:
                # Refused as a whole (one record's field unknown to the org, say): halves
                # until the record it is about stands alone.
                half = len(batch) // 2
                return self._send(batch[:half]) + self._send(batch[half:])
            category = catalogue.NOT_FOUND if isinstance(exc, NotFound) \
                else failures.category_of(str(exc.reason))
            return [self._dead(batch[0], category, exc)]
        return [self._settled(p, r) for p, r in zip(batch, results, strict=True)]

    def _settled(self, pending: Pending, result: RecordResult) -> Outcome:
        if result.success:
            return Outcome(pending, "sent")
        if result.transient:
            return self._again(pending, Transient(result.message, reason=result.code))
        return Outcome(pending, "dead", category=failures.category_of(result.code),
                       error_class=result.code, message=result.message)

    def _again(self, pending: Pending, exc: O2CError) -> Outcome:
        attempt = pending.tries + 1
        if attempt >= self.retries.max_attempts:
            return self._dead(pending, catalogue.EXHAUSTED, exc)
        wait_s = compute_backoff(attempt, base_s=self.retries.base_s, cap_s=self.retries.cap_s)
        return Outcome(pending, "retry", wait_s)

    @staticmethod
    def _dead(pending: Pending, category: str, exc: O2CError) -> Outcome:
        return Outcome(pending, "dead", category=category, error_class=type(exc).__name__,
                       message=str(exc))

    def _file(self, outcome: Outcome) -> None:
        failures.file(self.dead_letters, self.client, self.outbox.prefix, outcome.pending,
                      category=outcome.category, error_class=outcome.error_class,
                      message=outcome.message)
