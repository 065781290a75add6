"""The requeue of a dead letter when the broker is not the state's Redis (RabbitMQ).

On Redis one script pushes the message and marks the entry requeued. RabbitMQ cannot take
part in it, so "at most once out of the dead-letter queue" rests on a claim: a
compare-and-set ``open`` → ``requeuing`` that only one operator wins, then a publish that
RabbitMQ confirms, then ``requeuing`` → ``requeued``. What each failure leaves, and how
people see it, is in docs/architecture.md ("The requeue: at most once out of the
dead-letter queue").
"""

from __future__ import annotations

import uuid
from typing import Any

import redis

from o2c_workers import keys, timeline
from o2c_workers.atomic import Op
from o2c_workers.dlq.errors import Conflict, LeftRequeuing, NotPublished
from o2c_workers.dlq.models import DeadLetter, Status
from o2c_workers.dlq.requeue import Publisher, RequeuePlan
from o2c_workers.dlq.store import DeadLetterStore
from o2c_workers.infrastructure import BrokerUnavailable


def requeued_ops(store: DeadLetterStore, entry: DeadLetter, plan: RequeuePlan, *, actor: str,
                 now: float) -> list[Op]:
    """What marking an entry requeued writes beside it: audit, count, timeline."""
    p, txn = store.prefix, keys.transaction(store.prefix, plan.trace_key)
    return [store.audit_op("requeue", entry.id, actor=actor, now=now, **plan.describe()),
            ["HINCRBY", txn, "requeues", 1], ["EXPIRE", txn, timeline.TIMELINE_TTL_S],
            *timeline.record_ops(p, plan.trace_key, "requeued", at=now, dead_letter=entry.id,
                                 task=plan.task, task_id=plan.task_id, actor=actor)]


def requeue_published(store: DeadLetterStore, publisher: Publisher, entry: DeadLetter,
                      plan: RequeuePlan, outcome: dict[str, Any], *, actor: str,
                      now: float) -> dict[str, Any]:
    """Claim, publish, mark: at most once out of the dead-letter queue on RabbitMQ.

    1. claim: a compare-and-set ``open`` → ``requeuing`` with a claim id; of two operators
       one claims it, the other is refused (the entry changed);
    2. publish the message and wait for RabbitMQ's confirm;
    3. mark: a compare-and-set ``requeuing`` → ``requeued`` on the claim's revision.

    A publish not confirmed puts the claim back (``open`` again, on the same revision) and
    says so (``NotPublished``). A crash, or Redis lost, after the claim leaves the entry
    ``requeuing``: listed by ``o2c dlq list --status requeuing``, never taken by a plain
    requeue, requeued again only by ``--reclaim``.
    """
    claim = f"{actor}:{uuid.uuid4().hex[:10]}"
    taking = store.change(entry, status=Status.REQUEUING, now=now,
                          fields={"requeue_claim": claim, "requeue_claimed_at": now},
                          after=[store.audit_op("requeue_claim", entry.id, actor=actor,
                                                now=now, claim=claim,
                                                reclaimed=entry.status is Status.REQUEUING)])
    if not store.run([taking])[0]:
        raise Conflict(f"dead letter {entry.id} changed meanwhile (claimed, edited or "
                       "resolved by someone else); look at it again")
    claimed = entry.model_copy(update={"status": Status.REQUEUING, "rev": entry.rev + 1})
    try:
        publisher.publish([plan.message])
    except BrokerUnavailable as exc:
        where = _put_back(store, claimed, claim, exc, actor=actor, now=now)
        raise NotPublished(f"RabbitMQ did not confirm the requeue of {entry.id} ({exc}); "
                           f"the entry is {where}") from exc
    marking = store.change(claimed, status=Status.REQUEUED, now=now,
                           fields={"requeued_task_id": plan.task_id, "requeued_at": now},
                           after=requeued_ops(store, entry, plan, actor=actor, now=now))
    try:
        marked = store.run([marking])[0]
    except redis.RedisError as exc:
        raise LeftRequeuing(
            f"the requeue of {entry.id} is on its queue (task {plan.task_id}), but Redis "
            f"refused marking it requeued ({exc}): it is left requeuing; once Redis takes "
            f"writes, o2c dlq requeue --reclaim {entry.id} requeues it again (the step then "
            "runs twice; every step is idempotent)") from exc
    if not marked:
        # Published; meanwhile its step succeeded (resolved) or someone reclaimed it.
        current = store.get(entry.id)
        outcome["entry_status"] = current.status.value if current else "gone"
    return outcome


def _put_back(store: DeadLetterStore, claimed: DeadLetter, claim: str,
              exc: BrokerUnavailable, *, actor: str, now: float) -> str:
    """Release a claim whose publish failed; where the entry is now, for the message."""
    back = store.change(claimed, status=Status.OPEN, now=now, after=[store.audit_op(
        "requeue_not_published", claimed.id, actor=actor, now=now, claim=claim,
        reason=exc.reason)])
    try:
        released = store.run([back])[0]
    except redis.RedisError as error:
        return (f"left requeuing, as Redis refused to open it again ({error}): requeue it "
                "with --reclaim once Redis takes writes")
    return "open again: requeue it later" if released else "changed meanwhile: look at it again"
