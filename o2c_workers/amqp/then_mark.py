"""Publish, then mark: the guarded batches of the receiver, the sweeps and the repairs on
RabbitMQ.

On a Redis broker one script writes a notification's task message with its dedupe marks
and timeline entry (``o2c_workers.atomic``). RabbitMQ cannot take part in a Redis script,
so the order decides what a failure can leave behind. It is:

a. read the guards: an item whose guard holds (its dedupe mark is there: a resend of what
   was taken in) is left out, and its messages are not published;
b. publish every message of the other items and wait for every confirm
   (``o2c_workers.amqp.publish``);
c. only then run the guarded batch, without the messages: the marks, the timeline, a
   sweep's watermark.

A failure before (c) ends (a publish not confirmed, Redis refusing or gone, a crash)
leaves no mark, so the sender's resend is published again: at worst a message is on its
queue twice, and every step is idempotent. A mark never exists without its message
confirmed before it. Two takers racing between (a) and (c) both publish; the script's
guard lets one of them write, and the other's message is such a duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import cast

import redis

from o2c_workers.amqp.publish import Publisher
from o2c_workers.atomic import AtomicWriter, Item, Replicas, guard_reads, lets_run
from o2c_workers.enqueue import TaskMessage


class PublishThenMark:
    """Runs guarded batches whose task messages go to RabbitMQ (``BatchWriter``)."""

    def __init__(self, client: redis.Redis, publisher: Publisher) -> None:
        self.client = client
        self.publisher = publisher
        # Not the broker: it refuses an item that still carries messages.
        self.writer = AtomicWriter(client)

    def free(self, items: Sequence[Item]) -> list[bool]:
        """Whether each item's guard lets it run now (step a; one round trip)."""
        reads = [guard_reads(item.guard) if item.messages else [] for item in items]
        if not any(reads):
            return [True] * len(items)
        pipe = self.client.pipeline(transaction=False)
        for read in reads:
            for command in read:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        replies = iter(pipe.execute())
        return [lets_run(item.guard, [next(replies) for _ in read]) if read else True
                for item, read in zip(items, reads, strict=True)]

    def run(self, items: Sequence[Item], *, mark_ttl_s: int = 1,
            replicas: Replicas | None = None) -> list[bool]:
        """Steps a, b and c; per item whether it ran (False: a duplicate, nothing written)."""
        if not items:
            return []
        free = self.free(items)
        messages = [cast(TaskMessage, m) for item, ok in zip(items, free, strict=True)
                    if ok for m in item.messages]
        self.publisher.publish(messages)
        # An item found guarded is not run at all: were its mark to expire meanwhile, the
        # script would write marks for a message never published.
        chosen = [(i, replace(item, messages=())) for i, (item, ok)
                  in enumerate(zip(items, free, strict=True)) if ok]
        ran = self.writer.run([item for _, item in chosen], mark_ttl_s=mark_ttl_s,
                              replicas=replicas) if chosen else []
        out = [False] * len(items)
        for (index, _), done in zip(chosen, ran, strict=True):
            out[index] = done
        return out
