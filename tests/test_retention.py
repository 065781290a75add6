"""Every key that grows with transactions or messages has a TTL, a cap, or is pruned as it
grows; the key schema (``o2c_workers.keys``) states which."""

from __future__ import annotations

import fnmatch
import json
import time

import pytest
import redis

from config import load_settings
from o2c_workers import app as celery_app
from o2c_workers import keys, timeline
from o2c_workers.dlq import DeadLetterStore, Status
from o2c_workers.ratelimit import Limiter
from o2c_workers.receiver.app import Receiver
from o2c_workers.timeline import TIMELINE_MAX_EVENTS, TIMELINE_TTL_S
from tests import soapmsg
from tests.dlq.conftest import worker_entry
from tests.helpers import call_wsgi
from tests.receiver.conftest import TOKEN
from tests.receiver.test_erp_events import SECRET, event
from tests.receiver.test_erp_events import post as post_event

P = "o2c"
DAY_S = 24 * 3600
#: Keys without a TTL, and what bounds each (the key schema says the same).
BOUNDED = {
    f"{P}:txn:idx:active": "left by closed transactions, pruned past the timeline TTL",
    f"{P}:txn:idx:won": "pruned past the timeline TTL at each new won opportunity",
    f"{P}:dlq:entry:*": "open dead letters, kept until people act",
    f"{P}:dlq:idx:*": "pruned with their entries",
    f"{P}:dlq:facets:*": "the fixed sets of categories and domains",
    f"{P}:dlq:audit": f"capped at about {100_000} records",
    f"{P}:erp:cache:*:epoch": "one per kind of ERP master data (four)",
}


@pytest.fixture
def receiver(redis_url: str, redis_client: redis.Redis) -> Receiver:
    settings = load_settings(redis_url=redis_url, webhook_token=TOKEN,
                             salesforce_org_ids=[soapmsg.ORG_ID], erp_webhook_secret=SECRET)
    return Receiver(settings, redis_client=redis_client, celery_app=celery_app)


def ttl_s(client: redis.Redis, key: str) -> int:
    return int(client.ttl(key))


def test_what_the_receiver_writes_expires(receiver, redis_client) -> None:
    settings = receiver.settings
    assert call_wsgi(receiver, "POST", "/salesforce/outbound", soapmsg.won_message([1]),
                     query=f"token={TOKEN}")[0] == 200
    assert post_event(receiver, event(po_no="0065g00000AbCdE"))[0] == 200
    [mark_sf] = redis_client.keys(f"{P}:dedupe:sf:*")
    [mark_erp] = redis_client.keys(f"{P}:dedupe:erp:*")
    for mark in (mark_sf, mark_erp):
        assert settings.dedupe_ttl_s - 5 <= ttl_s(redis_client, mark) <= settings.dedupe_ttl_s
    for tl in redis_client.keys(f"{P}:timeline:*"):
        assert TIMELINE_TTL_S - 5 <= ttl_s(redis_client, tl) <= TIMELINE_TTL_S
    assert_every_key_bounded(redis_client)


def test_a_timeline_keeps_its_newest_events_only(redis_client) -> None:
    trace_key = "0015g00000ACCNTAAA"  # an account: a trace key that lives for years
    for n in range(TIMELINE_MAX_EVENTS + 5):
        timeline.record(redis_client, P, trace_key, "synced", n=n)
    events = timeline.read(redis_client, P, trace_key)
    assert len(events) == TIMELINE_MAX_EVENTS
    assert events[0]["n"] == 5 and events[-1]["n"] == TIMELINE_MAX_EVENTS + 4
    assert ttl_s(redis_client, keys.timeline(P, trace_key)) > TIMELINE_TTL_S - 5


def test_the_index_of_won_opportunities_forgets_them_with_their_timelines(redis_client) -> None:
    won = keys.transaction_index_won(P)
    redis_client.zadd(won, {"0065g00000OLD00AAA": time.time() - TIMELINE_TTL_S - DAY_S,
                            "0065g00000KEPT0AAA": time.time() - TIMELINE_TTL_S + DAY_S})
    timeline.record(redis_client, P, "0065g00000NEW00AAA", "won", milestone="won")
    assert sorted(m.decode() for m in redis_client.zrange(won, 0, -1)) == [
        "0065g00000KEPT0AAA", "0065g00000NEW00AAA"]


def test_resolved_dead_letters_are_kept_n_days_then_leave_every_index(redis_client) -> None:
    store = DeadLetterStore(redis_client, prefix=P, retention_s=30 * DAY_S)
    old = store.add(worker_entry(1, failed_at=time.time() - 40 * DAY_S))
    recent = store.add(worker_entry(2))
    long_ago = time.time() - 31 * DAY_S
    assert store.resolve(old.trace_key, task=old.task, filed_before=long_ago,
                         resolved_by="task-1", now=long_ago) == [old.id]
    assert store.resolve(recent.trace_key, task=recent.task, filed_before=time.time(),
                         resolved_by="task-2") == [recent.id]
    # The fleet's next resolution pruned the entry resolved 31 days ago, from everywhere.
    assert redis_client.exists(store.key(old.id)) == 0
    for key in redis_client.keys(f"{P}:dlq:idx:*"):
        assert old.id.encode() not in redis_client.zrange(key, 0, -1), key
    # The one resolved now is kept its 30 days (and a day's grace for the pruning to read it).
    assert 30 * DAY_S < ttl_s(redis_client, store.key(recent.id)) <= 31 * DAY_S
    assert store.ids(status=Status.RESOLVED) == [recent.id]
    assert_every_key_bounded(redis_client)


def test_the_limiters_keys_expire(redis_client) -> None:
    limiter = Limiter.from_settings(redis_client, load_settings(
        erp_rate_limit="10/second", erp_max_concurrency=2, key_prefix=P))
    with limiter.acquire(timeout_s=1):
        assert 0 < redis_client.pttl(keys.limiter_slots(P, "erp", "default"))
    limiter.pause(2.0)
    for key in redis_client.keys(f"{P}:limit:*"):
        assert redis_client.pttl(key) > 0, key


def assert_every_key_bounded(client: redis.Redis) -> None:
    """Every key of ours has a TTL, or is one of those ``BOUNDED`` names."""
    unbounded = [key.decode() for key in client.scan_iter(f"{P}:*")
                 if client.ttl(key) < 0
                 and not any(fnmatch.fnmatchcase(key.decode(), p) for p in BOUNDED)]
    assert not unbounded, json.dumps(unbounded)
