"""One Salesforce query for the won opportunities of one outbound message.

Salesforce sends the notifications of a burst (up to 100) in one outbound message. The
receiver puts the opportunities' ids in read groups of up to ``GROUP_SIZE`` and gives each
notification's first task its group (the ``o2c_read_group`` header: the ids and a key
made from them and the message's arrival, so only that message's steps share the read).
The first step of the group to run reads every opportunity of it in one query
(``reading.read_opportunities``) and leaves each other one's read on the state Redis for
its own step, which takes it (``GETDEL``: one read serves one step). The reads are made
after the message arrived, so each is as current as the notification it answers, as a
step's own read would be.

- Steps of one group that start together: the first takes a short lease (``SET NX``) and
  reads; the others wait for their entry up to ``WAIT_S``, then read alone.
- A step that finds the group read already (its entry taken, or expired after
  ``ENTRY_TTL_S``: a redelivery, a retry, a queue that waited) reads alone, as before.
- Redis refusing is never a reason to fail: the step reads alone.

The entries hold what the first step reads (the opportunity, its account's fields, its
lines) for at most ``ENTRY_TTL_S``; the chain's context still carries no account.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
from pydantic import ValidationError

from o2c_workers import keys, sfid
from o2c_workers.chain import OpportunityRead
from o2c_workers.services import reading
from o2c_workers.services.ports import SalesforceApi

log = logging.getLogger("o2c.reads")

#: The task whose read is shared: the first step of a won opportunity.
FIRST_TASK = "o2c.customer.ensure_customer"
#: Opportunities per group: one query each, and a short ``IN`` list.
GROUP_SIZE = 50
#: The message header that carries a notification's group.
HEADER = "o2c_read_group"
#: How long a read waits for its step (s), well inside the pricing's ``REPRICE_AFTER_S``.
ENTRY_TTL_S = 30
#: How long a step waits for the read another step of its group is making (s), and how
#: often it looks.
WAIT_S, LOOK_S = 3.0, 0.02
READING, DONE = "reading", "done"


@dataclass(frozen=True)
class ReadGroup:
    key: str
    ids: tuple[str, ...]

    def header(self) -> dict[str, Any]:
        return {"key": self.key, "ids": list(self.ids)}

    @classmethod
    def from_header(cls, value: Any) -> ReadGroup | None:
        """The group a message carries; ``None`` for none, or one that does not parse
        (the step then reads alone)."""
        if not isinstance(value, dict):
            return None
        key, ids = value.get("key"), value.get("ids")
        if not isinstance(key, str) or not isinstance(ids, list) or len(ids) < 2 or not all(
                isinstance(i, str) and sfid.is_valid(i) for i in ids):
            return None
        return cls(key, tuple(sfid.to18(i) for i in ids))


def groups(ids: Sequence[str], *, received_at: float) -> dict[str, ReadGroup]:
    """Each opportunity's group, by its 18-character id: the message's ids in order, in
    groups of ``GROUP_SIZE``; an opportunity alone in its group gets none."""
    unique = list(dict.fromkeys(sfid.to18(i) for i in ids))
    out: dict[str, ReadGroup] = {}
    for start in range(0, len(unique), GROUP_SIZE):
        chunk = tuple(unique[start:start + GROUP_SIZE])
        if len(chunk) < 2:
            continue
        digest = hashlib.sha256(f"{received_at!r}|{','.join(chunk)}".encode()).hexdigest()
        group = ReadGroup(digest[:32], chunk)
        out.update(dict.fromkeys(chunk, group))
    return out


class SharedReads:
    """The group reads on the state Redis (``keys.read_entry``, ``keys.read_lease``)."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix

    def read(self, sf: SalesforceApi, opportunity_id: str,
             group: ReadGroup | None) -> OpportunityRead:
        """The opportunity as it is now (``reading.read_opportunity``), read with its group
        when it has one."""
        opp = sfid.to18(opportunity_id)
        if group is None or opp not in group.ids:
            return reading.read_opportunity(sf, opp)
        try:
            return self._read(sf, opp, group)
        except redis.RedisError as exc:
            log.warning("cannot share the read of %s (%s): read alone", opp, exc)
            return reading.read_opportunity(sf, opp)

    def _read(self, sf: SalesforceApi, opp: str, group: ReadGroup) -> OpportunityRead:
        found = self._take(group, opp)
        if found is not None:
            return found
        lease = keys.read_lease(self.prefix, group.key)
        if self.redis.set(lease, READING, nx=True, ex=ENTRY_TTL_S):
            return self._read_group(sf, opp, group, lease)
        deadline = time.monotonic() + WAIT_S
        while _text(self.redis.get(lease)) == READING and time.monotonic() < deadline:
            time.sleep(LOOK_S)
            found = self._take(group, opp)
            if found is not None:
                return found
        found = self._take(group, opp)
        return found if found is not None else reading.read_opportunity(sf, opp)

    def _read_group(self, sf: SalesforceApi, opp: str, group: ReadGroup,
                    lease: str) -> OpportunityRead:
        try:
            reads = reading.read_opportunities(sf, group.ids)
        except BaseException:
            self.redis.delete(lease)
            raise
        with self.redis.pipeline(transaction=False) as pipe:
            for other, read in reads.items():
                if other != opp:
                    pipe.set(keys.read_entry(self.prefix, group.key, other),
                             read.model_dump_json(), ex=ENTRY_TTL_S)
            pipe.set(lease, DONE, xx=True, keepttl=True)
            pipe.execute()
        mine = reads.get(opp)
        return mine if mine is not None else reading.read_opportunity(sf, opp)

    def _take(self, group: ReadGroup, opp: str) -> OpportunityRead | None:
        raw = cast("bytes | str | None",
                   self.redis.getdel(keys.read_entry(self.prefix, group.key, opp)))
        if raw is None:
            return None
        try:
            return OpportunityRead.model_validate_json(raw)
        except ValidationError:
            return None


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
