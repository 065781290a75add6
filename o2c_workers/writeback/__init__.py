"""The status write-back outbox: steps accept Salesforce writes, flushers send them in batches.

A step that writes ERP status to Salesforce (an order's number and status, an invoice's or
a payment's status, an account's customer number) *accepts* the write into the outbox on
the state Redis (one atomic script) and returns. A flusher in each worker process sends
what is due in ``composite/sobjects`` calls of up to 200 records, about ``O2C_SF_FLUSH_S``
after a record's first accepted write. See ``outbox`` (the Redis side), ``flusher`` (the
sending side) and ``failures`` (what a refusal becomes).
"""

from o2c_workers.writeback.model import Write, stamp_of
from o2c_workers.writeback.outbox import SENT_TTL_S, Outbox

__all__ = ["SENT_TTL_S", "Outbox", "Write", "stamp_of"]
