"""The reliable transport's scripts, keeper and channel against real Redis (no worker)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from kombu import Connection

from o2c_workers import keys
from o2c_workers.delivery import scripts
from o2c_workers.delivery.census import census
from o2c_workers.delivery.keeper import Keeper
from o2c_workers.delivery.transport import Transport, due_ms

P = "o2c"


def keeper(url: str, **options: float) -> Keeper:
    return Keeper(client_factory=lambda: redis.Redis.from_url(url), prefix=P, queue_prefix="",
                  redelivery_after_s=options.get("redelivery_after_s", 30))


def hold(client: redis.Redis, consumer: str, queue: str, *messages: bytes) -> None:
    """What BLMOVE leaves behind: the newest taken message at the held list's head."""
    client.sadd(keys.delivery_queues(P, consumer), queue)
    client.zadd(keys.delivery_consumers(P), {consumer: 1})
    for message in messages:
        client.lpush(keys.delivery_held(P, consumer, queue), message)


def test_release_puts_held_messages_back_at_the_head_in_order(redis_url, redis_client):
    redis_client.lpush("customer", b"later")
    hold(redis_client, "c1", "customer", b"first", b"second")
    hold(redis_client, "c1", "order", b"third")
    assert keeper(redis_url).release("c1") == 3
    # The queue's head is its right end: the held messages come out first, oldest first.
    assert redis_client.rpop("customer") == b"first"
    assert redis_client.rpop("customer") == b"second"
    assert redis_client.rpop("customer") == b"later"
    assert redis_client.lrange("order", 0, -1) == [b"third"]
    assert redis_client.zcard(keys.delivery_consumers(P)) == 0
    assert not redis_client.exists(keys.delivery_queues(P, "c1"))


def test_maintain_moves_only_due_messages(redis_url, redis_client):
    now_ms = int(time.time() * 1000)
    delayed = keys.delivery_delayed(P)
    redis_client.zadd(delayed, {"customer\ndue": now_ms - 10, "customer\nlater": now_ms + 60_000})
    assert keeper(redis_url).tick() == (1, 0, 0)
    assert redis_client.lrange("customer", 0, -1) == [b"due"]
    assert redis_client.zrange(delayed, 0, -1) == [b"customer\nlater"]


def test_a_silent_consumer_is_reaped_and_a_fresh_one_is_not(redis_url, redis_client):
    now_ms = int(time.time() * 1000)
    hold(redis_client, "silent", "customer", b"m1")
    hold(redis_client, "fresh", "customer", b"m2")
    redis_client.zadd(keys.delivery_consumers(P), {"silent": now_ms - 21_000, "fresh": now_ms})
    client = redis.Redis.from_url(redis_url)
    result = client.eval(scripts.MAINTAIN, 2, keys.delivery_consumers(P),
                         keys.delivery_delayed(P), P, "", 20_000, "1", 10)
    assert result == [0, 1, 1]
    assert redis_client.lrange("customer", 0, -1) == [b"m1"]
    assert redis_client.zrange(keys.delivery_consumers(P), 0, -1) == [b"fresh"]


def test_a_new_keeper_judges_no_one_until_it_has_seen_the_fleet(redis_url, redis_client):
    """Right after a start (or a Redis restart) every heartbeat may look old."""
    hold(redis_client, "old", "customer", b"m1")
    k = keeper(redis_url)
    assert k.tick() == (0, 0, 0)
    assert redis_client.llen(keys.delivery_held(P, "old", "customer")) == 1
    k._healthy_ticks = 20  # as after 20 s of its own heartbeats
    assert k.tick() == (0, 1, 1)


def test_a_consumer_closed_while_redis_is_away_is_released_by_the_next(redis_url,
                                                                       redis_client):
    k = keeper(redis_url)
    k.add("gone", {"customer"})
    redis_client.lpush(keys.delivery_held(P, "gone", "customer"), b"m1")
    k._client = redis.Redis(port=1)  # nothing listens there: the close cannot reach Redis
    k.close("gone")
    assert k.orphans == {"gone"}
    k._client = None
    k.add("next", {"customer"})
    assert k.orphans == set()
    assert redis_client.lrange("customer", 0, -1) == [b"m1"]
    k.remove("next")


def test_due_ms_reads_celery_etas():
    eta = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert due_ms({"headers": {"eta": eta.isoformat()}}) == int(eta.timestamp() * 1000)
    assert due_ms({"headers": {"eta": None}}) is None
    assert due_ms({"headers": {}}) is None
    assert due_ms({"headers": {"eta": "2026-12-01T12:00:00"}}) is None  # naive: Celery's


@pytest.fixture
def connection(redis_url):
    conn = Connection(redis_url, transport=Transport,
                      transport_options={"o2c_prefix": P})
    yield conn
    conn.release()


def test_get_ack_and_requeue_move_one_message_between_queue_and_held(connection,
                                                                    redis_client):
    producer = connection.Producer()
    for n in (1, 2):
        producer.publish({"n": n}, routing_key="customer", declare=[])
    channel = connection.default_channel
    first = channel.basic_get("customer")
    assert census(redis_client, P, ["customer"]).held == 1
    first.ack()
    second = channel.basic_get("customer")
    assert second.payload == {"n": 2}
    second.reject(requeue=True)
    assert census(redis_client, P, ["customer"]).queued == 1
    again = channel.basic_get("customer", no_ack=True)
    assert again.payload == {"n": 2}
    assert census(redis_client, P, ["customer"]).total == 0


def test_a_message_with_a_distant_eta_is_parked(connection, redis_client):
    eta = datetime.now(UTC) + timedelta(minutes=90)  # longer than any visibility timeout
    connection.Producer().publish({"n": 1}, routing_key="customer", declare=[],
                                  headers={"eta": eta.isoformat()})
    assert redis_client.llen("customer") == 0
    [(member, score)] = redis_client.zrange(keys.delivery_delayed(P), 0, -1, withscores=True)
    assert member.startswith(b"customer\n") and score == int(eta.timestamp() * 1000)


def test_a_channel_closed_with_messages_held_puts_them_back(connection, redis_client):
    connection.Producer().publish({"n": 1}, routing_key="customer", declare=[])
    channel = connection.channel()
    assert channel.basic_get("customer") is not None
    channel.close()
    assert census(redis_client, P, ["customer"]).queued == 1
    assert redis_client.zcard(keys.delivery_consumers(P)) == 0
