"""Win opportunities (all at once, or paced open-loop), watch them get booked, wait for
quiet.

Two times per opportunity: when the ERP first holds its order submitted (booked in the
ERP), and when Salesforce carries the order's number (written back; the write-back waits
up to ``O2C_SF_FLUSH_S`` to share one call with others). The watcher asks Salesforce only
about those the ERP already has a submitted order for (one cheap control read of the ERP
per look), so its own API calls stay few. Each time is the start of the read that first
saw it: at most one look (``poll_s`` plus the read) late.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.bench.e2e_probe import Observer

#: Nothing new in either simulator for this long: the side is done with what it was given.
QUIET_S = 1.0


@dataclass
class Booking:
    """When each opportunity was won, submitted in the ERP and written back to Salesforce
    (``booked_at``: Salesforce carries the number; ``time.monotonic``)."""

    won_at: dict[str, float]
    booked_at: dict[str, float]
    submitted_at: dict[str, float] = field(default_factory=dict)

    def latencies_ms(self) -> list[float]:
        """Won → Salesforce carries the ERP order number."""
        return self._latencies_ms(self.booked_at)

    def submitted_latencies_ms(self) -> list[float]:
        """Won → the ERP holds the order, submitted."""
        return self._latencies_ms(self.submitted_at)

    def rate(self) -> float:
        """Orders written back per second, from the first win to the last one: a burst's
        steps may all wait for the first ones to clear (one FIFO queue), so a rate over part
        of the orders would flatter a side that finishes them all at the end."""
        return self._rate(self.booked_at)

    def submitted_rate(self) -> float:
        """Orders submitted in the ERP per second, counted the same way."""
        return self._rate(self.submitted_at)

    def _latencies_ms(self, done_at: dict[str, float]) -> list[float]:
        return sorted((done_at[i] - self.won_at[i]) * 1000 for i in done_at)

    def _rate(self, done_at: dict[str, float]) -> float:
        if not done_at:
            return 0.0
        return len(done_at) / (max(done_at.values()) - min(self.won_at.values()))


def feed(obs: Observer, ids: list[str], *, rate_per_s: float | None, poll_s: float,
         timeout_s: float) -> Booking:
    """Win ``ids`` (one save for all, or one each at ``rate_per_s``) and wait until every
    one is booked; raises if some are not within ``timeout_s``."""
    won_at: dict[str, float] = {}
    if rate_per_s is None:
        now = time.monotonic()
        obs.win(ids)
        won_at.update(dict.fromkeys(ids, now))
        feeder = None
    else:
        feeder = threading.Thread(target=_paced, args=(obs, ids, rate_per_s, won_at),
                                  name="e2e-feed", daemon=True)
        feeder.start()
    booked_at: dict[str, float] = {}
    submitted_at: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(booked_at) < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(booked_at)} of {len(ids)} opportunities booked in "
                               f"{timeout_s:.0f}s")
        time.sleep(poll_s)
        # Each order is read from the ERP about once: the read holds the ERP's store.
        unseen = [i for i in list(won_at) if i not in submitted_at]
        looked = time.monotonic()
        for opp_id, docs in obs.orders_of(unseen).items():
            if opp_id in won_at and any(doc["docstatus"] == 1 for doc in docs):
                submitted_at[opp_id] = looked
        seen = time.monotonic()
        for opp_id in obs.written(sorted(set(submitted_at) - set(booked_at))):
            booked_at[opp_id] = seen
    if feeder is not None:
        feeder.join()
    return Booking(won_at, booked_at, submitted_at)


def _paced(obs: Observer, ids: list[str], rate_per_s: float, won_at: dict[str, float]) -> None:
    """Open loop: the n-th win goes at start + n / rate, whatever came back before."""
    start = time.monotonic()
    for n, opp_id in enumerate(ids):
        wait = start + n / rate_per_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        at = time.monotonic()
        obs.win([opp_id])
        won_at[opp_id] = at


@dataclass(frozen=True)
class Calls:
    """Both simulators' counts at one moment."""

    sf: Counter[tuple[str, str]]
    erp_total: int

    @classmethod
    def read(cls, obs: Observer) -> Calls:
        return cls(obs.sf_calls(), int(obs.erp_stats()["calls"]["total"]))


def settle(obs: Observer, *, quiet_s: float = QUIET_S, timeout_s: float = 60.0,
           webhooks: bool = False) -> Calls:
    """Wait until neither simulator has seen a call for ``quiet_s`` (and, with
    ``webhooks``, no ERP webhook is left to deliver); the counts then."""
    deadline = time.monotonic() + timeout_s
    last, since = Calls.read(obs), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(min(0.25, quiet_s / 4))
        now = Calls.read(obs)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s and not (webhooks and obs.webhooks_pending()):
            return now
    raise RuntimeError(f"the simulators were not quiet for {quiet_s}s within {timeout_s:.0f}s")
