"""How much work the broker has: queued, held by consumers, and parked until due."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import redis

from o2c_workers import keys


@dataclass(frozen=True)
class Census:
    queued: int
    held: int
    delayed: int

    @property
    def total(self) -> int:
        return self.queued + self.held + self.delayed


def held_keys(client: redis.Redis, prefix: str) -> list[str]:
    """Every held list of every registered consumer (one SMEMBERS per consumer)."""
    found = []
    for raw in cast("list[bytes]", client.zrange(keys.delivery_consumers(prefix), 0, -1)):
        consumer = raw.decode()
        for queue in cast("set[bytes]", client.smembers(keys.delivery_queues(prefix, consumer))):
            found.append(keys.delivery_held(prefix, consumer, queue.decode()))
    return found


def census(client: redis.Redis, prefix: str, queues: Iterable[str]) -> Census:
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(queue)
    queued = sum(pipe.execute())
    for key in held_keys(client, prefix):
        pipe.llen(key)
    held = sum(pipe.execute())
    return Census(queued=queued, held=held,
                  delayed=cast(int, client.zcard(keys.delivery_delayed(prefix))))
