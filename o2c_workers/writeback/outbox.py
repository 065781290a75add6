"""The outbox on the state Redis: accept a write, claim what is due, settle what was sent.

Durable by construction: a write is accepted by one script (its fields, its version and
its place in ``sfout:due`` land together), and leaves only when a flusher settles it after
Salesforce answered, by a compare on the record's version: a write accepted while its
record was in flight stays and goes out next. A flusher that dies holding a claim loses
nothing either: its lease (``LEASE_S``) runs out and the record is due again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from o2c_workers import keys
from o2c_workers.writeback import scripts
from o2c_workers.writeback.model import Write, encode

#: How long a claim holds its records: longer than a call with its quick retries (three
#: tries of ``O2C_SALESFORCE_TIMEOUT_S`` at 10 s and their waits). A dead flusher's
#: records are due again this long after it claimed them.
LEASE_S = 60.0
#: Records one claim takes: what one ``composite/sobjects`` call carries.
BATCH_LIMIT = 200
#: How long the newest version sent of each field is remembered (refusing stale writes).
SENT_TTL_S = 30 * 86_400


@dataclass(frozen=True)
class Pending:
    """A claimed record: what to send, and what its fields' versions were."""

    member: str
    fields: dict[str, Any]
    stamps: dict[str, int]
    trace_key: str
    source: str
    tries: int

    @property
    def sobject(self) -> str:
        return self.member.split(":", 1)[0]

    @property
    def record_id(self) -> str:
        return self.member.split(":", 1)[1]


@dataclass(frozen=True)
class Outcome:
    """How one claimed record is settled: ``sent``, ``dead`` or ``retry``."""

    pending: Pending
    result: str
    retry_after_s: float = 0.0
    #: Whether a retry spends one of the record's tries (a wait for limits does not).
    counts: bool = True
    #: For ``dead``: the dead letter's category, error class and message.
    category: str = ""
    error_class: str = ""
    message: str = ""


class Outbox:
    """The write-back outbox of one fleet (one key prefix) on one Redis."""

    def __init__(self, client: redis.Redis, *, prefix: str, flush_s: float) -> None:
        self.client, self.prefix, self.flush_s = client, prefix, flush_s
        self._accept = client.register_script(scripts.ACCEPT)
        self._claim = client.register_script(scripts.CLAIM)
        self._settle = client.register_script(scripts.SETTLE)

    def accept(self, writes: Sequence[Write]) -> int:
        """Take ``writes`` in, each record in one atomic step; answer the fields taken (a
        field refused as older than what is pending or was sent is not counted)."""
        taken = 0
        flush_ms = str(int(self.flush_s * 1000))
        for write in writes:
            member = write.member
            args: list[str] = [member, flush_ms,
                               encode({"trace_key": write.trace_key, "source": write.source})]
            for name, value in sorted(write.fields.items()):
                args += [name, encode(value), str(write.stamp_for(name))]
            taken += int(self._accept(keys=[
                keys.sfout_record(self.prefix, member), keys.sfout_sent(self.prefix, member),
                keys.sfout_due(self.prefix), keys.sfout_leased(self.prefix)], args=args))
        return taken

    def claim(self, owner: str, *, limit: int = BATCH_LIMIT, lease_s: float = LEASE_S,
              force: bool = False) -> list[Pending] | float | None:
        """Records to send now (leased to ``owner``), or the seconds until the oldest is
        due, or None when nothing waits. ``force`` takes what waits whether due or not."""
        reply = self._claim(keys=[keys.sfout_due(self.prefix), keys.sfout_leased(self.prefix)],
                            args=[keys.sfout_record(self.prefix, ""), str(int(lease_s * 1000)),
                                  str(limit), owner, "1" if force else "0"])
        kind = _text(reply[0])
        if kind == "none":
            return None
        if kind == "wait":
            return float(reply[1]) / 1000
        return [_pending(_text(reply[i]), reply[i + 1]) for i in range(1, len(reply), 2)]

    def settle(self, owner: str, outcomes: Sequence[Outcome]) -> int:
        """Settle what ``owner`` claimed; a record whose lease it lost is left alone."""
        if not outcomes:
            return 0
        items = [{"m": o.pending.member, "o": o.result, "count": o.counts,
                  "after_ms": int(o.retry_after_s * 1000), "s": o.pending.stamps}
                 for o in outcomes]
        return int(self._settle(keys=[keys.sfout_due(self.prefix),
                                      keys.sfout_leased(self.prefix)],
                                args=[keys.sfout_record(self.prefix, ""),
                                      keys.sfout_sent(self.prefix, ""), owner,
                                      str(SENT_TTL_S), json.dumps(items)]))

    def waiting(self) -> int:
        """Records accepted and not yet sent (claimed ones included)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(keys.sfout_due(self.prefix))
        pipe.zcard(keys.sfout_leased(self.prefix))
        return sum(int(n) for n in pipe.execute())


def new_owner() -> str:
    """A flusher's name for its leases, unique across the fleet."""
    return uuid.uuid4().hex


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pending(member: str, flat: list[Any]) -> Pending:
    raw = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
    context = json.loads(raw.get("ctx") or "{}")
    fields = {name[2:]: json.loads(value) for name, value in raw.items()
              if name.startswith("f:")}
    stamps = {name[2:]: int(value) for name, value in raw.items() if name.startswith("s:")}
    return Pending(member, fields, stamps, str(context.get("trace_key") or ""),
                   str(context.get("source") or ""), int(raw.get("tries") or 0))
