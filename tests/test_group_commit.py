"""Group commit against real Redis: callers that arrive while a write is in flight share
the next one, each gets its own results, and no failure leaves a caller hanging.

Redis's replies pass through a proxy that holds each one back, so a write is reliably
in flight while the other callers arrive.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import redis

from o2c_workers.enqueue import AtomicWriter, GroupCommit, Item

ROOT = Path(__file__).resolve().parents[1]
HOLD_S = 0.3


class SlowReplies:
    """A TCP proxy to Redis that holds every reply back ``hold_s`` seconds."""

    def __init__(self, upstream: tuple[str, int], hold_s: float) -> None:
        self.upstream = upstream
        self.hold_s = hold_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, 0.0), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, self.hold_s),
                             daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, hold_s: float) -> None:
        try:
            while data := source.recv(65536):
                time.sleep(hold_s)
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def slow_client(redis_client: redis.Redis):
    # Load the script first: a flushed script would cost the proxied calls a second trip.
    AtomicWriter(redis_client).run([Item(["always"], [["SET", "warm", "1"]])])
    kwargs = redis_client.connection_pool.connection_kwargs
    proxy = SlowReplies((kwargs["host"], kwargs["port"]), HOLD_S)
    client = redis.Redis(host="127.0.0.1", port=proxy.port, db=kwargs["db"])
    yield client
    client.close()
    proxy.close()


def script_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
               for name in ("evalsha", "eval"))


def push(name: str, mark: str | None = None) -> Item:
    return Item.unless_marked(f"mark:{mark or name}", [["RPUSH", "q", name]])


def run_together(writer: GroupCommit, items: list[Item]) -> list[object]:
    """Each item from its own thread, all started at once; each thread's result or error."""
    results: list[object] = [None] * len(items)
    barrier = threading.Barrier(len(items))

    def call(index: int) -> None:
        barrier.wait()
        try:
            results[index] = writer.run([items[index]], mark_ttl_s=60)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(items))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a caller is still waiting"
    return results


def test_a_lone_caller_writes_at_once(redis_client):
    writer = GroupCommit(AtomicWriter(redis_client))
    assert writer.run([push("a"), push("b")], mark_ttl_s=60) == [True, True]
    assert writer.run([push("a")], mark_ttl_s=60) == [False]
    assert writer.run([], mark_ttl_s=60) == []
    assert redis_client.lrange("q", 0, -1) == [b"a", b"b"]


def test_callers_arriving_during_a_write_share_the_next_one(redis_client, slow_client):
    writer = GroupCommit(AtomicWriter(slow_client))
    before = script_calls(redis_client)
    names = [f"n{i}" for i in range(12)]
    results = run_together(writer, [push(name) for name in names])
    assert results == [[True]] * 12
    assert sorted(redis_client.lrange("q", 0, -1)) == sorted(n.encode() for n in names)
    # The first caller's write, then one write for the eleven that queued behind it.
    assert script_calls(redis_client) - before == 2


def test_the_same_mark_from_callers_in_one_write_is_enqueued_once(redis_client, slow_client):
    writer = GroupCommit(AtomicWriter(slow_client))
    results = run_together(writer, [push("first"), *(push(f"same{i}", "same")
                                                      for i in range(4))])
    assert results[0] == [True]
    assert sorted(results[1:]) == [[False]] * 3 + [[True]]  # type: ignore[type-var]
    assert len(redis_client.lrange("q", 0, -1)) == 2


def test_max_items_splits_the_queue_into_several_writes(redis_client, slow_client):
    writer = GroupCommit(AtomicWriter(slow_client), max_items=4)
    before = script_calls(redis_client)
    results = run_together(writer, [push(f"n{i}") for i in range(9)])
    assert results == [[True]] * 9
    # One alone, then the eight that queued, four per write.
    assert script_calls(redis_client) - before == 3


def test_a_failed_write_fails_every_caller_in_it_and_the_next_write_works(redis_client,
                                                                           slow_client):
    redis_client.set("not-a-list", "x")
    writer = GroupCommit(AtomicWriter(slow_client))
    broken = Item(["always"], [["RPUSH", "not-a-list", "x"]])  # WRONGTYPE: the script fails
    results = run_together(writer, [push("lead"), broken, push("b"), push("c")])
    # Whoever shared the broken item's write failed with it; nobody hangs.
    assert isinstance(results[1], redis.ResponseError)
    assert all(r == [True] or isinstance(r, redis.ResponseError) for r in results), results
    assert writer.run([push("after")], mark_ttl_s=60) == [True]
    # A failed caller was not acknowledged, and its sender resends. Ops that ran before the
    # error stay written with their mark (a Redis script does not roll back), so the resend
    # is then a duplicate: in the end each is on the queue exactly once.
    for name, result in zip(["lead", None, "b", "c"], results, strict=True):
        if name and isinstance(result, redis.ResponseError):
            writer.run([push(name)], mark_ttl_s=60)
    assert sorted(redis_client.lrange("q", 0, -1)) == [b"after", b"b", b"c", b"lead"]


def test_redis_down_fails_every_waiting_caller(tmp_path):
    from o2c_workers.redis_runtime import free_port, start_private

    handle = start_private(port=free_port(), workdir=tmp_path)
    client = redis.Redis.from_url(handle.url)
    writer = GroupCommit(AtomicWriter(client))
    assert writer.run([push("a")], mark_ttl_s=60) == [True]
    handle.stop()
    try:
        results = run_together(writer, [push(f"n{i}") for i in range(6)])
        assert all(isinstance(r, redis.ConnectionError) for r in results), results
    finally:
        client.close()


GEVENT_SCENARIO = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, sys
    import gevent, redis
    from o2c_workers.enqueue import AtomicWriter, GroupCommit, Item

    host, port, db, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    writer = GroupCommit(AtomicWriter(redis.Redis(host=host, port=port, db=db)))

    def call(name, timeout=None):
        try:
            with gevent.Timeout(timeout):
                item = Item.unless_marked("mark:" + name, [["RPUSH", "q", name]])
                return writer.run([item], mark_ttl_s=60)
        except gevent.Timeout:
            return "timed out"
        except redis.RedisError as exc:
            return type(exc).__name__

    out = {}
    # A caller that gives up while queued behind a write in flight.
    lead = gevent.spawn(call, "lead")
    gevent.sleep(hold / 6)
    quitter = gevent.spawn(call, "quitter", hold / 3)
    waiter = gevent.spawn(call, "waiter")
    gevent.joinall([lead, quitter, waiter], timeout=10)
    out["gave up"] = [lead.value, quitter.value, waiter.value, call("after1", 5)]
    # A caller killed while it writes for others too (it took the lead from "lead2").
    lead = gevent.spawn(call, "lead2")
    gevent.sleep(hold / 6)
    doomed = gevent.spawn(call, "doomed")
    sharer = gevent.spawn(call, "sharer")
    gevent.sleep(hold * 1.5)  # lead2 is answered; doomed now writes for itself and sharer
    doomed.kill()
    gevent.joinall([lead, sharer], timeout=10)
    out["killed"] = [lead.value, doomed.dead, sharer.value, call("after2", 5)]
    print(json.dumps(out))
""")


def test_under_gevent_a_caller_that_gives_up_or_is_killed_leaves_no_one_waiting(
        redis_client, slow_client):
    kwargs = slow_client.connection_pool.connection_kwargs
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_SCENARIO, "127.0.0.1", str(kwargs["port"]),
         str(kwargs["db"]), str(HOLD_S)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
        timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["gave up"] == [[True], "timed out", [True], [True]]
    assert out["killed"] == [[True], True, "ConnectionError", [True]]
    queued = redis_client.lrange("q", 0, -1)
    # The caller that gave up was dropped before any write carried it.
    assert b"quitter" not in queued
    assert {b"lead", b"waiter", b"after1", b"lead2", b"after2"} <= set(queued)


@pytest.mark.parametrize("group_commit, script_calls_expected", [(True, 2), (False, 8)])
def test_the_receiver_shares_writes_among_concurrent_messages_unless_turned_off(
        redis_url, redis_client, slow_client, group_commit, script_calls_expected):
    from config import load_settings
    from o2c_workers import app as celery_app
    from o2c_workers.receiver import Receiver
    from o2c_workers.receiver.soap import ACK
    from tests import soapmsg
    from tests.helpers import call_wsgi, queued
    from tests.receiver.conftest import TOKEN

    settings = load_settings(redis_url=redis_url, webhook_token=TOKEN,
                             salesforce_org_ids=[soapmsg.ORG_ID],
                             receiver_group_commit=group_commit)
    receiver = Receiver(settings, redis_client=slow_client, celery_app=celery_app)
    answers: list[bytes] = []
    barrier = threading.Barrier(8)

    def send(n: int) -> None:
        barrier.wait()
        answers.append(call_wsgi(receiver, "POST", "/salesforce/outbound",
                                 soapmsg.won_message([n]), query=f"token={TOKEN}")[2])

    before = script_calls(redis_client)
    threads = [threading.Thread(target=send, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == [ACK] * 8
    assert script_calls(redis_client) - before == script_calls_expected
    assert sorted(m["args"][0]["notification_id"] for m in queued(redis_client, "customer")) \
        == sorted(soapmsg.notification_id(n) for n in range(1, 9))
