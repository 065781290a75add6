"""A consumer of several queues waits, between its looks over all of them, on the queue it
last took from: the customer worker (``-Q customer,sweep``) waits on ``customer``, not on
the sweep's queue, so a won opportunity is not held up to a wait's length behind it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Queue

from o2c_workers.celery_app import RELIABLE_TRANSPORT

BUSY, RARE = "t-busy", "t-rare"


def _blocking_waits(url: str, seconds: float, during: Any) -> list[str]:
    """The source list of every ``BLMOVE`` on ``url``'s database while ``during()`` ran
    (``MONITOR`` sees every database of the server: other tests' workers too)."""
    watcher = redis.Redis.from_url(url)
    db = int(watcher.connection_pool.connection_kwargs.get("db", 0))
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        with watcher.monitor() as monitor:
            ready.set()
            while not stop.is_set():
                seen_now = monitor.next_command()
                command = seen_now["command"]
                if int(seen_now["db"]) == db and command.upper().startswith("BLMOVE "):
                    seen.append(command.split()[1])

    ready = threading.Event()
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        during(seconds)
    finally:
        stop.set()
        with redis.Redis.from_url(url) as nudge:
            nudge.ping()  # a command for the monitor to see, so that it looks at ``stop``
        thread.join(5)
        watcher.close()
    return seen


@pytest.fixture
def consumer(redis_url: str) -> Iterator[tuple[Connection, list[Any]]]:
    with Connection(redis_url, transport=RELIABLE_TRANSPORT) as conn:
        got: list[Any] = []

        def take(body: Any, message: Any) -> None:
            got.append(body)
            message.ack()

        queues = [Queue(BUSY, routing_key=BUSY), Queue(RARE, routing_key=RARE)]
        with conn.Consumer(queues, callbacks=[take], accept=["json"]):
            conn.Producer().publish({"n": 1}, routing_key=BUSY, declare=queues,
                                    serializer="json")
            conn.drain_events(timeout=5)
            assert got == [{"n": 1}]
            yield conn, got


def _drain(conn: Connection, seconds: float) -> None:
    try:
        conn.drain_events(timeout=seconds)
    except TimeoutError:
        pass


def test_the_wait_is_on_the_queue_last_taken_from(redis_url: str,
                                                  consumer: tuple[Connection, list[Any]]):
    conn, got = consumer
    waits = _blocking_waits(redis_url, 0.6, lambda s: _drain(conn, s))
    assert waits, "the consumer never waited"
    assert set(waits) == {BUSY}, waits
    assert got == [{"n": 1}]


def test_a_message_on_the_other_queue_is_still_taken_and_moves_the_wait(
        redis_url: str, consumer: tuple[Connection, list[Any]]):
    conn, got = consumer
    conn.Producer().publish({"n": 2}, routing_key=RARE, serializer="json")
    conn.drain_events(timeout=5)
    assert got == [{"n": 1}, {"n": 2}]
    waits = _blocking_waits(redis_url, 0.6, lambda s: _drain(conn, s))
    assert waits and set(waits) == {RARE}, waits
