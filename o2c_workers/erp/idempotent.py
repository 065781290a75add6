"""Create a document exactly once, keyed by its unique ``salesforce_id``.

The ERP has no idempotency header; the unique custom field is the key. One try is a POST:

* success → the created document;
* Duplicate (409, or 417 ``UniqueValidationError``) → the existing document, looked up
  (none found: a BusinessError for the integration team, as retrying cannot help);
* Transient or UnknownOutcome (the request may have been received) → look the document up
  first; found → it; not found → the error stands and the quick retry POSTs again;
* Throttled → nothing was done (the ERP or the limiter refused it); retried after a wait;
* anything else (business, auth) → raised at once.

When the tries are spent the last error is raised (UnknownOutcome or Transient): the caller's
Celery retry calls again later, and that call resolves it the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from o2c_workers.erp.http import ErpHttp
from o2c_workers.erp.mapping import ERP_VALIDATION
from o2c_workers.erp.retry import QuickRetry
from o2c_workers.errors import BusinessError, Duplicate, Throttled, Transient

log = logging.getLogger("o2c.erp.idempotent")

T = TypeVar("T")


def create_once(
    http: ErpHttp, policy: QuickRetry, *, path: str, payload: dict[str, Any],
    salesforce_id: str, lookup: Callable[[], T | None], parse: Callable[[Any], T],
) -> T:
    """POST ``payload`` to ``path`` unless a document with ``salesforce_id`` exists."""
    for attempt in policy.retrying():
        with attempt:
            return _try_once(http, path, payload, salesforce_id, lookup, parse)
    raise AssertionError("tenacity re-raises the last error")  # pragma: no cover


def _try_once(http: ErpHttp, path: str, payload: dict[str, Any], salesforce_id: str,
              lookup: Callable[[], T | None], parse: Callable[[Any], T]) -> T:
    try:
        answer = http.call("POST", path, body=payload)
    except Duplicate as exc:
        found = lookup()
        if found is None:
            # Not a race (the unique index serializes inserts): another unique value
            # collided, or the API user cannot read the record. People must look.
            raise BusinessError(
                f"{path}: the ERP reports a duplicate, yet no record has salesforce_id "
                f"{salesforce_id}: {exc.message}", reason="duplicate_not_found",
                status=exc.status, body=exc.body, category=ERP_VALIDATION) from exc
        log.info("%s: %s exists already; linked", path, salesforce_id)
        return found
    except Transient as exc:
        found = _look_up_after(exc, lookup)
        if found is None:
            raise
        log.info("%s: %s was created despite %s; linked", path, salesforce_id,
                 type(exc).__name__)
        return found
    return parse(answer["data"])


def _look_up_after(error: Transient, lookup: Callable[[], T | None]) -> T | None:
    """The document, if the failed POST created it; None when absent or unknowable."""
    try:
        return lookup()
    except (Throttled, Transient) as exc:
        log.warning("could not look up after %s: %s", type(error).__name__, exc.reason)
        return None
