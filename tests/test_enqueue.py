"""The atomic writer against real Redis: guards, its own connections, restarts and errors."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest
import redis

from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.dev.redis_runtime import free_port, start_private


def test_a_mark_lets_the_first_write_through_and_skips_the_rest(redis_client):
    writer = AtomicWriter(redis_client)
    item = Item.unless_marked("mark:1", [["LPUSH", "q", "a"]])
    assert writer.run([item, item], mark_ttl_s=60) == [True, False]
    assert redis_client.lrange("q", 0, -1) == [b"a"]
    assert 0 < redis_client.ttl("mark:1") <= 60


def test_a_compare_and_set_applies_only_on_the_expected_value(redis_client):
    writer = AtomicWriter(redis_client)
    redis_client.hset("entry", "rev", "2")
    stale = Item.if_field("entry", "rev", "1", [["HSET", "entry", "status", "requeued"]])
    fresh = Item.if_field("entry", "rev", "2", [["HSET", "entry", "status", "open"]])
    assert writer.run([stale, fresh]) == [False, True]
    assert redis_client.hget("entry", "status") == b"open"


def test_the_same_mark_from_many_threads_at_once_is_written_once(redis_client):
    writer = AtomicWriter(redis_client)
    results: list[bool] = []
    gate = threading.Barrier(8)

    def post(n: int) -> None:
        gate.wait()
        for i in range(50):
            results.extend(writer.run([
                Item.unless_marked("mark:shared", [["LPUSH", "shared", n]]),
                Item.unless_marked(f"mark:{n}:{i}", [["LPUSH", "own", f"{n}:{i}"]]),
            ], mark_ttl_s=60))

    threads = [threading.Thread(target=post, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert redis_client.llen("shared") == 1
    assert redis_client.llen("own") == 400
    assert sum(results) == 401


def test_a_script_flushed_from_redis_is_sent_again(redis_client):
    writer = AtomicWriter(redis_client)
    assert writer.run([Item(["always"], [["SET", "a", "1"]])]) == [True]
    redis_client.script_flush()
    assert writer.run([Item(["always"], [["SET", "b", "2"]])]) == [True]
    assert redis_client.mget("a", "b") == [b"1", b"2"]


@pytest.mark.slow
def test_idle_connections_kept_across_a_redis_restart_are_replaced(tmp_path):
    port = free_port()
    handle = start_private(port=port, workdir=tmp_path)
    client = redis.Redis.from_url(handle.url)
    writer = AtomicWriter(client)
    try:
        # Leave several idle connections behind, as concurrent requests would.
        gate = threading.Barrier(4)

        def write(n: int) -> None:
            gate.wait()
            writer.run([Item(["always"], [["SET", f"before:{n}", "1"]])])

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        handle.stop(keep_data=True)
        handle = start_private(port=port, workdir=tmp_path)
        # The first write after the restart meets a dead connection and still succeeds.
        assert writer.run([Item(["always"], [["SET", "after", "1"]])]) == [True]
        assert client.get("after") == b"1"
    finally:
        client.close()
        handle.stop()


@pytest.mark.slow
def test_redis_down_raises_and_the_writer_works_again_once_it_is_back(tmp_path):
    port = free_port()
    handle = start_private(port=port, workdir=tmp_path)
    client = redis.Redis.from_url(handle.url, socket_connect_timeout=1)
    writer = AtomicWriter(client)
    try:
        assert writer.run([Item(["always"], [["SET", "a", "1"]])]) == [True]
        handle.stop(keep_data=True)
        with pytest.raises(redis.ConnectionError):
            writer.run([Item(["always"], [["SET", "b", "1"]])])
        handle = start_private(port=port, workdir=tmp_path)
        assert writer.run([Item(["always"], [["SET", "c", "1"]])]) == [True]
    finally:
        client.close()
        handle.stop()


def test_an_error_reply_raises_and_leaves_the_writer_usable(redis_client):
    writer = AtomicWriter(redis_client)
    redis_client.set("not-a-list", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        writer.run([Item.unless_marked("mark:x", [["LPUSH", "not-a-list", "a"]])],
                   mark_ttl_s=60)
    assert not redis_client.exists("mark:x")
    assert writer.run([Item.unless_marked("mark:x", [["LPUSH", "q", "a"]])],
                      mark_ttl_s=60) == [True]


class DropFirstScriptReply:
    """A TCP proxy to Redis that lets the first script run, then cuts the connection
    before its reply reaches the client: a reply lost on the way back."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.dropped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            armed = threading.Event()
            threading.Thread(target=self._pump, args=(client, server, armed, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, armed, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, armed: threading.Event,
              to_redis: bool) -> None:
        try:
            while data := source.recv(65536):
                if to_redis and b"EVAL" in data and not self.dropped.is_set():
                    armed.set()
                if not to_redis and armed.is_set():
                    self.dropped.set()
                    break  # the script ran; its reply goes nowhere
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def test_a_reply_lost_after_the_script_ran_never_enqueues_twice(redis_url, redis_client):
    # Load the script first, so the first call through the proxy runs it.
    AtomicWriter(redis_client).run([Item(["always"], [["SET", "warm", "1"]])])
    kwargs = redis_client.connection_pool.connection_kwargs
    proxy = DropFirstScriptReply((kwargs["host"], kwargs["port"]))
    client = redis.Redis(host="127.0.0.1", port=proxy.port, db=kwargs["db"])
    try:
        item = Item.unless_marked("mark:lost", [["LPUSH", "q", "a"]])
        # The first run wrote the mark; the repeat on a new connection finds it.
        assert AtomicWriter(client).run([item], mark_ttl_s=60) == [False]
        assert proxy.dropped.is_set()
        assert redis_client.lrange("q", 0, -1) == [b"a"]
        assert redis_client.exists("mark:lost")
    finally:
        client.close()
        proxy.close()
