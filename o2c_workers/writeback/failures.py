"""What Salesforce's refusal of one record becomes: a dead letter for that record only.

Each entry replays as ``o2c.order.write_status``, which accepts the record's write into the
outbox again (still ordered by its versions: a write older than what was sent since is
refused, not sent). The write holds field names and ERP statuses, never credentials.
"""

from __future__ import annotations

import logging
import time

import redis

from o2c_workers import catalogue, metrics, timeline
from o2c_workers.dlq import DeadLetter, DeadLetterStore
from o2c_workers.writeback.model import Write
from o2c_workers.writeback.outbox import Pending

log = logging.getLogger("o2c.writeback")

#: The task a write-back dead letter replays through (``tasks/order.py``).
REPLAY_TASK = "o2c.order.write_status"
DOMAIN = "order"

#: Salesforce's per-record error codes → the category of their dead letter. Any other code
#: is ``invalid_payload``: the integration team reads the message.
CATEGORY_OF_CODE = {
    "ENTITY_IS_DELETED": catalogue.NOT_FOUND,
    "NOT_FOUND": catalogue.NOT_FOUND,
    "INVALID_CROSS_REFERENCE_KEY": catalogue.NOT_FOUND,
    "INVALID_ID_FIELD": catalogue.NOT_FOUND,
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": catalogue.BUSINESS,
    "FIELD_INTEGRITY_EXCEPTION": catalogue.BUSINESS,
    "INSUFFICIENT_ACCESS_OR_READONLY": catalogue.AUTH,
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": catalogue.AUTH,
}


def category_of(code: str) -> str:
    return CATEGORY_OF_CODE.get(code, catalogue.INVALID_PAYLOAD)


def write_of(pending: Pending) -> Write:
    """The claimed record as the write that replays it."""
    return Write(sobject=pending.sobject, record_id=pending.record_id, fields=pending.fields,
                 stamp=max(pending.stamps.values(), default=0), stamps=dict(pending.stamps),
                 trace_key=pending.trace_key or pending.record_id, source=pending.source)


def file(store: DeadLetterStore, client: redis.Redis, prefix: str, pending: Pending, *,
         category: str, error_class: str, message: str) -> DeadLetter:
    """File one record's write as a dead letter, on its transaction's timeline."""
    write = write_of(pending)
    payload = {"trace_key": write.trace_key, "writes": [write.dump()]}
    now = time.time()
    entry = DeadLetter(
        trace_key=write.trace_key, domain=DOMAIN, task=REPLAY_TASK, args=[payload],
        payload=payload, error_class=error_class, category=category,
        message=f"Salesforce refused the write-back of {pending.member}"
                f"{f' ({pending.source})' if pending.source else ''}: {message}",
        remediation=catalogue.remediation(category), attempts=pending.tries + 1,
        first_failed_at=now, last_failed_at=now)
    store.add(entry)
    timeline.record(client, prefix, write.trace_key, "dead_lettered", task=REPLAY_TASK,
                    category=category, dead_letter=entry.id, error=error_class)
    log.warning("dead-lettered the write-back of %s: %s", pending.member, message,
                extra={"category": category, "dead_letter": entry.id,
                       "trace_key": write.trace_key})
    metrics.dead_letter(DOMAIN, category)
    return entry
