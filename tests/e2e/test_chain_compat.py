"""A message enqueued by the fleet before the chain's context was typed still runs."""

from __future__ import annotations

import base64
import json

import pytest

from tests.e2e.test_resilience import assert_one_order_each
from tests.plugins.workers import wait_for
from tests.test_chain import FIXTURE


@pytest.mark.slow
def test_a_schema_1_submit_order_message_books_and_writes_back(o2c_factory):
    """The captured message is for the one opportunity of this seeded world. Today's fleet
    runs the chain up to the order queue (so the ERP customer exists); the message it queued
    is swapped for the captured one, and the order worker runs that."""
    o2c = o2c_factory(world_args={"opportunities": 1, "accounts": 1}, order_worker=False)
    [opp] = o2c.ok_opportunities()
    captured = json.loads(FIXTURE.read_text())
    assert captured["headers"]["trace_key"] == opp
    o2c.win([opp])
    wait_for(lambda: o2c.redis.llen("order") == 1, what="the order step to be queued")
    [queued] = o2c.redis.lrange("order", 0, -1)
    body = json.loads(base64.b64decode(json.loads(queued)["body"]))
    assert body[0][0]["schema"] == 2  # today's fleet writes the current schema
    o2c.redis.delete("order")
    o2c.redis.lpush("order", FIXTURE.read_text())
    o2c.start_order_worker()
    o2c.wait_written_back([opp])
    assert_one_order_each(o2c, [opp])
    assert o2c.dead_letters().count() == 0
