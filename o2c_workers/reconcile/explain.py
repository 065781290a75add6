"""What our own records say of a disagreement: a chain in flight, a stalled one, an open
dead letter that people are already asked to fix, or a status write-back still waiting in
the outbox (it reaches Salesforce within ``O2C_SF_FLUSH_S``). Read only for the findings."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from o2c_workers import keys, sfid
from o2c_workers.dlq import DeadLetterStore, Status
from o2c_workers.dlq.query import age_text
from o2c_workers.reconcile.findings import Finding
from o2c_workers.stalls import is_stalled

RUNNING, STALLED, DEAD_LETTERED = "running", "stalled", "dead_lettered"


@dataclass(frozen=True)
class State:
    #: ``running``, ``stalled``, ``dead_lettered`` or None (nothing of ours explains it).
    state: str | None
    text: str | None


def explain(client: redis.Redis, prefix: str, findings: list[Finding], *,
            stall_after_s: float, now: float | None = None) -> dict[str, State]:
    """The state of each finding's transaction, and its ``explanation`` filled in."""
    now = time.time() if now is None else now
    store = DeadLetterStore(client, prefix=prefix)
    ids = sorted({finding.opportunity_id for finding in findings})
    pipe = client.pipeline(transaction=False)
    for trace_key in ids:
        pipe.zscore(keys.transaction_index_active(prefix), trace_key)
    scores = dict(zip(ids, pipe.execute(), strict=True))
    for trace_key in ids:
        pipe.exists(keys.sfout_record(prefix, _outbox_member(trace_key)))
    waiting = dict(zip(ids, pipe.execute(), strict=True))
    states: dict[str, State] = {}
    for trace_key in ids:
        # Open, or requeuing (claimed by a requeue): still in the queue, people on it.
        letters = [e for e in store.many(store.ids(trace_key=trace_key, status=None))
                   if not e.status.closed]
        score = scores[trace_key]
        if letters:
            listed = ", ".join(f"{e.category} ({e.id}"
                               + (")" if e.status is Status.OPEN else f", {e.status})")
                               for e in letters)
            states[trace_key] = State(DEAD_LETTERED, f"open dead letter: {listed}")
        elif waiting[trace_key]:
            states[trace_key] = State(RUNNING, "write-back waiting in the outbox")
        elif score is not None and is_stalled(score, closed=False, open_dead_letters=0,
                                              stall_after_s=stall_after_s, now=now):
            states[trace_key] = State(STALLED, f"chain stalled for {age_text(now - score)}")
        elif score is not None:
            states[trace_key] = State(RUNNING, "chain running")
        else:
            states[trace_key] = State(None, None)
    for finding in findings:
        finding.explanation = states[finding.opportunity_id].text
    return states


def _outbox_member(opportunity_id: str) -> str:
    """The opportunity's record in the outbox (``Write.member``)."""
    full = sfid.to18(opportunity_id) if sfid.is_valid(opportunity_id) else opportunity_id
    return keys.sfout_member("Opportunity", full)
