"""The two writers of batches that carry task messages: the guards read before a publish say
what the script would do, and no message reaches a Redis list unless Redis is the broker."""

from __future__ import annotations

import pytest
import redis

from o2c_workers import app as celery_app
from o2c_workers.amqp.publish import Publisher
from o2c_workers.amqp.then_mark import PublishThenMark
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.enqueue import MessageFactory
from tests.amqp.conftest import Broker, queue_lists

MSG = MessageFactory(celery_app).build("o2c.customer.probe_step", args=[{"trace_key": "t"}],
                                       trace_key="t")


def guards() -> list[Item]:
    return [Item.unless_marked("m:1", [["SET", "w:1", "1"]], messages=[MSG]),
            Item.unless_any(["m:2", "m:3"], [["SET", "w:2", "1"]], sets=["m:2"],
                            messages=[MSG]),
            Item(["hfield", "h", "rev", "1"], [["SET", "w:3", "1"]], [MSG]),
            Item(["always"], [["SET", "w:4", "1"]], [MSG])]


@pytest.mark.parametrize("state", [{}, {"m:1": "1", "m:3": "1"}, {"m:2": "1"}])
@pytest.mark.parametrize("rev", [None, "1", "2"])
def test_the_guards_read_before_a_publish_agree_with_the_script(redis_client, state, rev):
    checker = PublishThenMark(redis_client, Publisher("amqp://unused"))
    for key, value in state.items():
        redis_client.set(key, value)
    if rev is not None:
        redis_client.hset("h", "rev", rev)
    predicted = checker.free(guards())
    stripped = [Item(i.guard, i.ops) for i in guards()]
    assert AtomicWriter(redis_client).run(stripped, mark_ttl_s=60) == predicted


def test_messages_reach_a_redis_list_only_when_redis_is_the_broker(redis_client):
    with pytest.raises(ValueError, match="pushes=True"):
        AtomicWriter(redis_client).run([Item(["always"], [["SET", "w", "1"]], [MSG])])
    assert redis_client.dbsize() == 0
    assert AtomicWriter(redis_client, pushes=True).run(
        [Item.unless_marked("m", [["SET", "w", "1"]], messages=[MSG])], mark_ttl_s=60) == [True]
    assert redis_client.lrange("customer", 0, -1) == [MSG.envelope.encode()]


def test_publish_then_mark_writes_what_the_guards_let_through(redis_client: redis.Redis,
                                                              broker: Broker,
                                                              publisher: Publisher):
    writer = PublishThenMark(redis_client, publisher)
    redis_client.set("m:1", "1")
    assert writer.run(guards()[:2], mark_ttl_s=60) == [False, True]
    assert broker.count("customer") == 1  # the guarded one published nothing
    assert not redis_client.exists("w:1") and redis_client.exists("w:2", "m:2") == 2
    assert writer.run(guards()[:2], mark_ttl_s=60) == [False, False]
    assert broker.count("customer") == 1
    assert queue_lists(redis_client) == 0
