"""The outcomes of an opportunity without an order (skipped, cancelled): stamped each time,
cleared by the next booking, shown by ``o2c status`` and counted by ``o2c report``, and
closing the transaction like its write-back does. Real Redis."""

from __future__ import annotations

import time

from o2c_workers import keys, timeline
from o2c_workers.report import build_report
from o2c_workers.stalls import stalled_transactions
from o2c_workers.status import transaction_status

P = "o2c"
OPP = "0065g00000SKIPDAAA"


def record(client, event: str, at: float, **options) -> None:
    timeline.record(client, P, OPP, event, at=at, **options)


def stage(client) -> str:
    return str(transaction_status(client, P, OPP, stall_after_s=300)["stage"])


def test_an_outcome_is_the_stage_until_the_next_booking(redis_client):
    start = time.time() - 3600
    record(redis_client, "received", start)
    record(redis_client, "won", start + 1, milestone="won")
    record(redis_client, "skipped", start + 2, outcome=timeline.SKIPPED)
    assert stage(redis_client) == "skipped"
    # Nothing left in flight: a skipped transaction is never stalled.
    assert redis_client.zscore(keys.transaction_index_active(P), OPP) is None
    assert stalled_transactions(redis_client, P, stall_after_s=300) == []
    assert build_report(redis_client, P).counts["skipped"] == 1
    # Won again: booked and written back; the outcome is gone.
    record(redis_client, "received", start + 10)
    record(redis_client, "order_submitted", start + 11, milestone="booked")
    record(redis_client, "written_back", start + 12, milestone="written_back")
    assert stage(redis_client) == "written_back"
    assert build_report(redis_client, P).counts["skipped"] == 0
    # Lost later: cancelled, stamped at its own time.
    record(redis_client, "received", start + 20)
    record(redis_client, "order_cancelled", start + 21, outcome=timeline.CANCELLED)
    assert stage(redis_client) == "cancelled"
    counts = build_report(redis_client, P).counts
    assert (counts["cancelled"], counts["booked"], counts["won"]) == (1, 1, 1)
    assert timeline.milestones(redis_client, P, OPP)["cancelled"] == start + 21


def test_a_change_with_nothing_to_do_closes_the_transaction(redis_client):
    old = time.time() - 3600
    record(redis_client, "received", old)
    record(redis_client, "followed", old + 1, closes=True, action="no_order")
    assert stalled_transactions(redis_client, P, stall_after_s=300) == []
