"""The keeper: one thread per consuming process that keeps held work safe.

Every second it heartbeats the process's live consumers, moves delayed messages that are
due onto their queues and puts back what silent consumers held. It runs beside the event
loop, not in it, so a step that occupies the loop (the solo pool) never looks like a death.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from o2c_workers import keys
from o2c_workers.delivery import scripts

log = logging.getLogger("o2c.delivery")

#: Seconds between two heartbeats (and two moves of due retries).
TICK_S = 1.0
#: Most delayed messages moved in one tick.
MOVE_BATCH = 500
#: A consumer silent for this share of the redelivery bound is presumed dead; the rest of
#: the bound covers the reaper's own tick.
DEAD_AFTER_SHARE = 2 / 3


@dataclass
class Keeper:
    """Heartbeats, due retries and the reaper for one Redis and key prefix."""

    client_factory: Callable[[], redis.Redis]
    prefix: str
    queue_prefix: str
    redelivery_after_s: float
    #: Live consumers of this process: id → the queue names it takes from.
    consumers: dict[str, set[str]] = field(default_factory=dict)
    #: Consumers of this process that closed without putting back what they held (Redis
    #: was away): the next consumer to start puts it back before it takes anything.
    orphans: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _pid: int = 0
    _healthy_ticks: int = 0
    _client: redis.Redis | None = None

    @property
    def dead_after_s(self) -> float:
        return self.redelivery_after_s * DEAD_AFTER_SHARE

    def add(self, consumer: str, queues: set[str]) -> None:
        """Register ``consumer`` now (before it takes anything), then heartbeat it.

        What this process's closed consumers still hold goes back first: after a lost
        connection the worker has forgotten those messages, so nothing would ack them."""
        for orphan in sorted(self.orphans):
            returned = self.release(orphan)
            self.orphans.discard(orphan)
            if returned:
                log.warning("put back %d message(s) held before the broker connection was "
                            "lost", returned)
        with self._lock:
            self.consumers.setdefault(consumer, set()).update(queues)
            snapshot = {consumer: set(self.consumers[consumer])}
        self._register(self._redis(), snapshot)
        self._ensure_running()

    def remove(self, consumer: str) -> None:
        with self._lock:
            self.consumers.pop(consumer, None)

    def close(self, consumer: str) -> None:
        """``consumer`` stops: put back what it holds now, or at the next start."""
        try:
            self.release(consumer)
        except redis.RedisError:
            self.orphans.add(consumer)

    def release(self, consumer: str) -> int:
        """Put back everything ``consumer`` holds; return how many messages."""
        self.remove(consumer)
        return int(cast(int, self._redis().eval(
            scripts.RELEASE, 0, self.prefix, consumer, self.queue_prefix)))

    def tick(self) -> tuple[int, int, int]:
        """One round: heartbeat, move due retries, reap the silent (once we have seen
        enough of the fleet's heartbeats ourselves to judge). Returns the script's counts."""
        client = self._redis()
        with self._lock:
            snapshot = {c: set(q) for c, q in self.consumers.items()}
        if snapshot:
            self._register(client, snapshot)
        reap = self._healthy_ticks * TICK_S >= self.dead_after_s
        moved, reaped, returned = cast(list[int], client.eval(
            scripts.MAINTAIN, 2, keys.delivery_consumers(self.prefix),
            keys.delivery_delayed(self.prefix), self.prefix, self.queue_prefix,
            int(self.dead_after_s * 1000), "1" if reap else "0", MOVE_BATCH))
        self._healthy_ticks += 1
        if reaped:
            log.warning("put back %d message(s) held by %d silent consumer(s)", returned,
                        reaped)
        return int(moved), int(reaped), int(returned)

    def _register(self, client: redis.Redis, consumers: dict[str, set[str]]) -> None:
        args: list[Any] = [self.prefix]
        for consumer, queues in consumers.items():
            args.extend([consumer, len(queues), *sorted(queues)])
        client.eval(scripts.REGISTER, 1, keys.delivery_consumers(self.prefix), *args)

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def _ensure_running(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        self._pid = os.getpid()
        self._client = None  # never a connection made before a fork
        self._healthy_ticks = 0
        self._thread = threading.Thread(target=self._run, name="o2c-delivery-keeper",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        stop = threading.Event()
        while not stop.wait(TICK_S):
            try:
                self.tick()
            except redis.RedisError as exc:
                # Judge no one until our own heartbeats have been landing again for a while:
                # after a Redis restart every heartbeat in it is old.
                self._healthy_ticks = 0
                log.debug("delivery keeper: Redis unavailable (%s); trying again", exc)


_keepers: dict[tuple[str, str], Keeper] = {}
_keepers_lock = threading.Lock()


def keeper_for(url_key: str, *, client_factory: Callable[[], redis.Redis], prefix: str,
               queue_prefix: str, redelivery_after_s: float) -> Keeper:
    """This process's keeper for one Redis (``url_key``) and key prefix."""
    with _keepers_lock:
        key = (url_key, prefix)
        if key not in _keepers:
            _keepers[key] = Keeper(client_factory=client_factory, prefix=prefix,
                                   queue_prefix=queue_prefix,
                                   redelivery_after_s=redelivery_after_s)
        return _keepers[key]
