"""The store's indexes against real Redis: filters, pages, stats, resolution, retention."""

from __future__ import annotations

import pytest

from o2c_workers import keys, timeline
from o2c_workers.dlq import Status
from o2c_workers.dlq.errors import BadFilter
from o2c_workers.dlq.query import Filter, parse_since
from tests.dlq.conftest import RETENTION_D, worker_entry

NOW = 1_800_000_000.0


def seed(store):
    """Six entries over six hours: two categories, three domains, two trace keys."""
    plan = [("credit_hold", "pricing", "A"), ("credit_hold", "pricing", "B"),
            ("exhausted", "order", "A"), ("exhausted", "customer", "B"),
            ("credit_hold", "order", "A"), ("exhausted", "pricing", "B")]
    entries = []
    for n, (category, domain, trace) in enumerate(plan):
        entry = worker_entry(n, category=category, domain=domain, trace_key=f"trace-{trace}",
                             failed_at=NOW - (6 - n) * 3600)
        entries.append(store.add(entry))
    return entries


def ids(entries):
    return [e.id for e in entries]


def resolve_every_step(store, trace_key, *, resolved_by, now=NOW):
    """What the successes of every step of ``trace_key``, started at ``now``, resolve."""
    return sorted(entry_id for domain in ("customer", "pricing", "order")
                  for entry_id in store.resolve(trace_key, task=f"o2c.{domain}.probe_step",
                                                filed_before=now, resolved_by=resolved_by,
                                                now=now))


def test_filters_by_category_domain_trace_key_and_age(store):
    e = seed(store)
    assert store.ids(category="credit_hold") == ids([e[0], e[1], e[4]])
    assert store.ids(domain="pricing") == ids([e[0], e[1], e[5]])
    assert store.ids(category="exhausted", domain="pricing") == [e[5].id]
    assert store.ids(trace_key="trace-A") == ids([e[0], e[2], e[4]])
    assert store.ids(trace_key="trace-A", domain="order") == ids([e[2], e[4]])
    assert store.ids(since=NOW - 3 * 3600) == ids(e[3:])
    assert store.ids(category="credit_hold", since=NOW - 3 * 3600) == [e[4].id]
    assert store.ids(category="nothing") == []


def test_pages_and_totals_oldest_or_newest_first(store):
    e = seed(store)
    first = store.query(Filter(), limit=4)
    assert (first.ids, first.total, first.next_offset) == (ids(e[:4]), 6, 4)
    second = store.query(Filter(), offset=4, limit=4)
    assert (second.ids, second.next_offset) == (ids(e[4:]), None)
    newest = store.query(Filter(category="exhausted"), limit=2, newest_first=True)
    assert (newest.ids, newest.total) == ([e[5].id, e[3].id], 3)


def test_status_filters_follow_transitions(store, dlq, redis_client):
    e = seed(store)
    assert resolve_every_step(store, "trace-A", resolved_by="task-1") == sorted(
        ids([e[0], e[2], e[4]]))
    assert store.ids(category="credit_hold") == [e[1].id]
    assert store.ids(status=Status.RESOLVED, category="credit_hold") == ids([e[0], e[4]])
    assert store.ids(status=None, category="credit_hold") == ids([e[0], e[1], e[4]])
    assert store.ids(status=Status.RESOLVED, trace_key="trace-A") == ids([e[0], e[2], e[4]])
    # No intersection key is left behind.
    assert not list(redis_client.scan_iter(keys.dlq_temp("o2c", "*")))


def test_resolve_leaves_a_pointer_and_a_timeline_event(store, redis_client):
    e = seed(store)
    resolve_every_step(store, "trace-B", resolved_by="task-42")
    entry = store.get(e[1].id)
    assert (entry.status, entry.resolved_by, entry.resolved_at) == (Status.RESOLVED, "task-42",
                                                                    NOW)
    events = timeline.read(redis_client, "o2c", "trace-B")
    assert sorted(ev["dead_letter"] for ev in events) == sorted(ids([e[1], e[3], e[5]]))
    assert {ev["event"] for ev in events} == {"dead_letter_resolved"}
    # Resolving again finds nothing open.
    assert resolve_every_step(store, "trace-B", resolved_by="task-43") == []


SYNC_INVOICE = "o2c.invoice.sync_invoice"


def test_a_success_resolves_only_the_older_dead_letters_of_its_own_step(store, redis_client):
    """Promise 10: the step (task) and the trace key must match, and the entry must have been
    filed before the success started; a requeued one is resolved by its own step too."""
    trace = "0065g00000000R1AAA"
    own = store.add(worker_entry(1, domain="invoice", task=SYNC_INVOICE, trace_key=trace,
                                 category="reconciliation", failed_at=NOW - 60))
    requeued = store.add(worker_entry(2, domain="invoice", task=SYNC_INVOICE, trace_key=trace,
                                      failed_at=NOW - 30, status="requeued"))
    other_step = store.add(worker_entry(3, domain="order", task="o2c.order.write_back",
                                        trace_key=trace, failed_at=NOW - 60))
    newer = store.add(worker_entry(4, domain="invoice", task=SYNC_INVOICE, trace_key=trace,
                                   failed_at=NOW + 1))
    other_trace = store.add(worker_entry(5, domain="invoice", task=SYNC_INVOICE,
                                         trace_key="0065g00000000R2AAA", failed_at=NOW - 60))
    done = store.resolve(trace, task=SYNC_INVOICE, filed_before=NOW, resolved_by="task-7",
                         now=NOW + 2)
    assert sorted(done) == sorted([own.id, requeued.id])
    assert {store.get(i).status for i in done} == {Status.RESOLVED}
    assert store.ids(trace_key=trace) == [other_step.id, newer.id]
    assert store.get(other_trace.id).status is Status.OPEN
    events = timeline.read(redis_client, "o2c", trace)
    assert {(ev["dead_letter"], ev["task"]) for ev in events} == {
        (own.id, SYNC_INVOICE), (requeued.id, SYNC_INVOICE)}


def test_closed_entries_expire_after_retention_and_leave_no_index_behind(store, redis_client):
    e = seed(store)
    resolve_every_step(store, "trace-A", resolved_by="task-1")
    retention_s = RETENTION_D * 86400
    ttl = redis_client.ttl(store.key(e[0].id))
    assert retention_s < ttl <= retention_s + 86400
    assert redis_client.ttl(store.key(e[1].id)) == -1  # open ones stay
    assert store.prune(now=NOW + retention_s - 1) == 0
    assert store.prune(now=NOW + retention_s + 1) == 3
    assert store.get(e[0].id) is None
    assert store.ids(status=None) == ids([e[1], e[3], e[5]])
    assert store.ids(status=Status.RESOLVED) == []
    assert store.ids(status=None, trace_key="trace-A") == []
    assert redis_client.zcard(keys.dlq_index_expiry("o2c")) == 0


def test_stats_count_by_status_category_domain_and_name_the_oldest(store):
    e = seed(store)
    resolve_every_step(store, "trace-A", resolved_by="task-1")
    data = store.stats(now=NOW)
    assert data["by_status"] == {"open": 3, "requeuing": 0, "requeued": 0,
                                  "resolved": 3, "purged": 0}
    assert data["open_by_category"] == {"credit_hold": 1, "exhausted": 2}
    assert data["open_by_domain"] == {"customer": 1, "pricing": 2}
    assert data["oldest_open"]["id"] == e[1].id
    assert data["oldest_open"]["age_s"] == 5 * 3600


def test_secrets_are_masked_when_stored(store):
    entry = worker_entry(1, message="token=abc123secret failed",
                         payload={"api_key": "k-123456", "record": {"Name": "x"}})
    stored = store.get(store.add(entry).id)
    assert stored.payload["api_key"] == "[redacted]"
    assert "abc123secret" not in stored.message


def test_since_understands_ages_dates_and_epochs():
    now = 1_000_000.0
    assert parse_since("2h", now=now) == now - 7200
    assert parse_since("3d", now=now) == now - 3 * 86400
    assert parse_since("90m", now=now) == now - 5400
    assert parse_since("2026-01-02") == parse_since("2026-01-02T00:00:00Z")
    assert parse_since("1700000000") == 1_700_000_000.0
    assert parse_since(None) is None


def test_bad_filters_are_refused_clearly():
    with pytest.raises(BadFilter, match="use 30m"):
        Filter.build(since="yesterday")
    with pytest.raises(BadFilter, match="unknown status"):
        Filter.build(status="gone")
    assert Filter.build(status="all").status is None
