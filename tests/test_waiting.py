"""The bookkeeping of a wait: how long, how many, since when."""

from __future__ import annotations

import random
from types import SimpleNamespace

from o2c_workers import waiting
from o2c_workers.waiting import (
    MIN_WAIT_S,
    WAIT_JITTER_S,
    WAITING_SINCE_HEADER,
    WAITS_HEADER,
    countdown_s,
    next_wait,
    waits_of,
)


def request(**headers: object) -> SimpleNamespace:
    """A task request as Celery builds it: custom headers are attributes and ``headers``."""
    return SimpleNamespace(headers=dict(headers), **headers)


def test_a_first_wait_starts_now_and_counts_one() -> None:
    wait = next_wait(request(), retry_after_s=0.3, now=1000.0, limit_s=900)
    assert (wait.count, wait.since) == (1, 1000.0)
    assert wait.headers() == {WAITS_HEADER: 1, WAITING_SINCE_HEADER: 1000.0}
    assert wait.waited_s(1000.0) == 0.0


def test_a_later_wait_keeps_its_start_and_counts_on() -> None:
    earlier = request(**{WAITS_HEADER: 4, WAITING_SINCE_HEADER: 900.0})
    wait = next_wait(earlier, retry_after_s=None, now=1000.0, limit_s=900)
    assert (wait.count, wait.since, wait.waited_s(1000.0)) == (5, 900.0, 100.0)


def test_headers_are_read_from_either_place_and_junk_counts_as_none() -> None:
    only_headers = SimpleNamespace(headers={WAITS_HEADER: "2", WAITING_SINCE_HEADER: "5.5"})
    assert waits_of(only_headers) == (2, 5.5)
    assert waits_of(SimpleNamespace(headers=None)) == (0, None)
    assert waits_of(request(**{WAITS_HEADER: "many"})) == (0, None)


def test_the_countdown_honours_retry_after_with_a_floor_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    short = [countdown_s(0.05, limit_s=900, rng=rng) for _ in range(200)]
    assert all(MIN_WAIT_S <= c <= MIN_WAIT_S + WAIT_JITTER_S for c in short)
    assert max(short) - min(short) > WAIT_JITTER_S / 2  # spread, not all at once
    assert 30.0 <= countdown_s(30.0, limit_s=900, rng=rng) <= 30.0 + WAIT_JITTER_S
    assert countdown_s(3600.0, limit_s=900, rng=rng) == 900.0
    assert countdown_s(None, limit_s=0.5, rng=rng) == 0.5


def test_the_module_documents_its_headers() -> None:
    doc = waiting.__doc__ or ""
    assert f"``{WAITS_HEADER}``" in doc and f"``{WAITING_SINCE_HEADER}``" in doc
