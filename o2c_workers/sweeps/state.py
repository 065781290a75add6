"""What the sweeps keep in Redis: durable watermarks, the last run of each, and the lease
that lets one sweep run at a time (keys in ``o2c_workers.keys``)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

import redis

from o2c_workers import keys
from o2c_workers.atomic import Op
from o2c_workers.errors import O2CError
from o2c_workers.sweeps.results import OUTCOMES, SweepResult

#: The sweeps whose figures are kept, in the order a run makes them, and the ERP change
#: feed's (``erp_feed``), which runs on its own schedule under its own lease.
SWEEPS = ("opportunities", "accounts", "stalled", "erp_feed")
#: Fields of a failed run, dropped again by the next success.
_FAILURE_FIELDS = ("failed_at", "error")

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class SweepBusy(O2CError):
    """Another sweep holds the lease; this run is skipped (it changes nothing)."""


def watermark(client: redis.Redis, prefix: str, sweep: str) -> float | None:
    """The sweep's durable watermark (epoch s), or None before its first run."""
    score = client.zscore(keys.sweep_watermarks(prefix), sweep)
    return None if score is None else float(cast(float, score))


def advance_op(prefix: str, sweep: str, to: float) -> Op:
    """The write that moves the watermark forward to ``to`` (never back)."""
    return ["ZADD", keys.sweep_watermarks(prefix), "GT", repr(to), sweep]


def record_success(client: redis.Redis, prefix: str, result: SweepResult) -> None:
    """Keep the figures of a successful sweep (what ``o2c report`` and ``/metrics`` show)."""
    key = keys.sweep_last(prefix, result.sweep)
    counts = result.counts
    figures: dict[str, Any] = {
        "finished_at": repr(result.finished_at or time.time()),
        "started_at": repr(result.started_at), "since": repr(result.since or 0.0),
        "seen": result.seen, "started": result.started, "api_calls": result.api_calls,
        **{name: counts.get(name, 0) for name in OUTCOMES}}
    current = watermark(client, prefix, result.sweep)
    if current is not None:
        figures["watermark"] = repr(current)
    pipe = client.pipeline(transaction=True)
    pipe.hset(key, mapping=figures)
    pipe.hdel(key, *_FAILURE_FIELDS)
    pipe.hincrby(key, "runs", 1)
    pipe.execute()


def record_failure(client: redis.Redis, prefix: str, sweep: str, error: str) -> None:
    key = keys.sweep_last(prefix, sweep)
    pipe = client.pipeline(transaction=True)
    pipe.hset(key, mapping={"failed_at": repr(time.time()), "error": error[:500]})
    pipe.hincrby(key, "failures", 1)
    pipe.execute()


@dataclass(frozen=True)
class SweepStatus:
    """The last successful run of one sweep, and its watermark."""

    sweep: str
    finished_at: float | None
    watermark: float | None
    seen: int
    started: int
    api_calls: int
    runs: int
    failures: int
    failed_at: float | None
    error: str | None
    outcomes: dict[str, int]

    def watermark_age_s(self, now: float | None = None) -> float | None:
        if self.watermark is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.watermark)

    def figures(self, now: float | None = None) -> dict[str, float | None]:
        """What ``/metrics`` shows of it (``o2c_sweep_*``)."""
        return {"finished_at": self.finished_at, "watermark": self.watermark,
                "watermark_age_s": self.watermark_age_s(now), "seen": self.seen,
                "started": self.started, "api_calls": self.api_calls,
                "failing": float(self.failed_at is not None)}

    def as_dict(self) -> dict[str, Any]:
        return {"sweep": self.sweep, "finished_at": self.finished_at,
                "watermark": self.watermark, "watermark_age_s": self.watermark_age_s(),
                "seen": self.seen, "started": self.started, "api_calls": self.api_calls,
                "runs": self.runs, "failures": self.failures, "failed_at": self.failed_at,
                "error": self.error, "outcomes": self.outcomes}


def read_status(client: redis.Redis, prefix: str) -> dict[str, SweepStatus]:
    """Every sweep that ever ran, by name (two round trips)."""
    pipe = client.pipeline(transaction=False)
    for sweep in SWEEPS:
        pipe.hgetall(keys.sweep_last(prefix, sweep))
    pipe.zrange(keys.sweep_watermarks(prefix), 0, -1, withscores=True)
    *hashes, marks = pipe.execute()
    marks = {member.decode(): float(score) for member, score in marks}
    out = {}
    for sweep, raw in zip(SWEEPS, hashes, strict=False):
        if not raw and sweep not in marks:
            continue
        data = {k.decode(): v.decode() for k, v in raw.items()}
        out[sweep] = SweepStatus(
            sweep=sweep, finished_at=_float(data.get("finished_at")),
            watermark=marks.get(sweep), seen=int(data.get("seen", 0)),
            started=int(data.get("started", 0)), api_calls=int(data.get("api_calls", 0)),
            runs=int(data.get("runs", 0)), failures=int(data.get("failures", 0)),
            failed_at=_float(data.get("failed_at")), error=data.get("error"),
            outcomes={name: int(data[name]) for name in OUTCOMES if int(data.get(name, 0))})
    return out


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)


class Lease:
    """One sweep at a time for the whole fleet: a token in Redis with a TTL, renewed as
    the sweep goes, released (only by its holder) at the end."""

    def __init__(self, client: redis.Redis, prefix: str, *, ttl_s: float,
                 feed: str | None = None) -> None:
        self.client = client
        self.key = keys.sweep_lock(prefix, feed)
        self.what = "sweep" if feed is None else "change feed"
        self.ttl_ms = int(ttl_s * 1000)
        self.token = uuid.uuid4().hex

    def acquire(self) -> None:
        if not self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            raise SweepBusy(f"another {self.what} is running (its lease is held); try again "
                            "later", reason="busy")

    def renew(self) -> None:
        self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms)

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, self.key, self.token)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
