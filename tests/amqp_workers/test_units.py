"""The pure parts of the workers' side on RabbitMQ: countdown rounding, the hold's budget,
and how a death becomes a dead letter (real Redis for the run counts)."""

from __future__ import annotations

from datetime import UTC, datetime

from o2c_workers import outage, poison
from o2c_workers.amqp.dead import Death, build_entry, entry_id
from o2c_workers.compat import native_delay_countdown


def test_countdowns_are_whole_seconds_on_rabbitmq_only():
    assert native_delay_countdown(0.05, broker_kind="amqp") == 1.0
    assert native_delay_countdown(2.1, broker_kind="amqp") == 3.0
    assert native_delay_countdown(0.05, broker_kind="redis") == 0.05
    assert native_delay_countdown(0, broker_kind="amqp") == 0


def test_a_hold_never_reaches_the_soft_time_limit():
    assert outage.hold_budget_s(started_at=1000.0, soft_time_limit_s=240, now=1000.0) == 120
    assert outage.hold_budget_s(started_at=1000.0, soft_time_limit_s=240, now=1200.0) == 30
    assert outage.hold_budget_s(started_at=1000.0, soft_time_limit_s=240, now=1239.0) == 0
    assert outage.hold_budget_s(started_at=1000.0, soft_time_limit_s=None) == outage.HOLD_S


def test_a_hold_ends_as_soon_as_redis_takes_a_write(redis_client):
    assert outage.hold_until_writable(redis_client, "o2c", hold_s=5)
    assert redis_client.pttl("o2c:worker:writable") > 0


def headers(reason: str, **extra):
    return {"task": "o2c.order.submit_order", "id": "t-1", "trace_key": "0065g00000000U1AAA",
            "retries": 2, "x-death": [{"reason": reason, "queue": "order", "count": 1,
                                       "time": datetime(2026, 12, 3, tzinfo=UTC)}], **extra}


BODY = [[{"trace_key": "0065g00000000U1AAA", "n": 1}], {},
        {"chain": [{"task": "o2c.order.write_back"}]}]


def test_a_delivery_limit_death_is_filed_with_its_context(redis_client):
    entry = build_entry(redis_client, "o2c", headers("delivery_limit"), BODY, now=1.0)
    assert (entry.category, entry.error_class, entry.source) == (
        "delivery_limit", "DeliveryLimit", "broker")
    assert (entry.task, entry.domain, entry.trace_key) == (
        "o2c.order.submit_order", "order", "0065g00000000U1AAA")
    assert entry.args == BODY[0] and entry.chain == ["o2c.order.write_back"]
    assert entry.attempts == 3  # no delivery count in the headers: the retries + 1
    assert entry.id == entry_id(Death.of(headers("delivery_limit")), "t-1")


def test_runs_the_count_saw_die_make_it_worker_lost(redis_client):
    poison.started(redis_client, "o2c", "t-1")
    poison.note_exit(redis_client, "o2c", "t-1", "signal 9 (SIGKILL)")
    entry = build_entry(redis_client, "o2c", headers("delivery_limit", **{
        "x-delivery-count": 20}), BODY)
    assert (entry.category, entry.attempts) == ("worker_lost", 21)
    assert "signal 9 (SIGKILL)" in entry.message


def test_an_expired_message_is_dropped_and_a_rejected_one_is_unexpected(redis_client):
    assert build_entry(redis_client, "o2c", headers("expired"), BODY) is None
    rejected = build_entry(redis_client, "o2c", headers("rejected"), BODY)
    assert (rejected.category, rejected.error_class) == ("unexpected", "Rejected")
