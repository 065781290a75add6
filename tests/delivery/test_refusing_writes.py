"""Redis up but refusing writes (OOM under ``noeviction``, MISCONF): nothing is lost, no
worker dies, everything runs once Redis takes writes again.

Taking a message (``BLMOVE``) needs memory; acking or requeuing it needs a writable primary.
A refused take leaves the message on its queue, a refused ack or requeue leaves it in the
consumer's held list, and a step whose own writes are refused goes back to its queue rather
than being acked. kombu's stock transport, for comparison, pops a message with ``BRPOP``
(which needs no memory) and then fails to record it as unacked: the message is gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

from o2c_workers import app as celery_app
from o2c_workers import keys
from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.dev.fleet import ManagedProcess
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.enqueue import MessageFactory
from tests.plugins.workers import start_worker, wait_for
from tests.probe_tasks import PROBE_KEY
from tests.refusing import misconf, out_of_memory, private_redis  # noqa: F401

pytestmark = pytest.mark.slow

QUEUE = Queue("order", Exchange("order", type="direct"), routing_key="order")
RELIABLE = "o2c_workers.delivery.transport:Transport"


def held(client: redis.Redis) -> int:
    return sum(int(client.llen(k)) for k in client.scan_iter("o2c:delivery:consumer:*:held:*"))


@pytest.fixture
def client(private_redis) -> Iterator[redis.Redis]:  # noqa: F811
    client = redis.Redis.from_url(private_redis.url)
    yield client
    client.close()


def drain_at_the_limit(url: str, client: redis.Redis, transport: str | None) -> list[object]:
    """A running consumer's next take, made once Redis has reached its memory limit."""
    got: list[object] = []
    with Connection(url, transport=transport,
                    transport_options={"o2c_prefix": "o2c"}) as conn:
        with Consumer(conn, [QUEUE], callbacks=[lambda body, msg: got.append(body)],
                      accept=["json"]), out_of_memory(client):
            try:
                conn.drain_events(timeout=1.5)
            except TimeoutError:
                pass
    return got


def publish(url: str) -> None:
    with Connection(url) as conn:
        Producer(conn).publish({"n": 1}, exchange=QUEUE.exchange, routing_key="order",
                               declare=[QUEUE])


def test_a_take_refused_for_memory_leaves_the_message_on_its_queue(private_redis, client):  # noqa: F811
    publish(private_redis.url)
    assert drain_at_the_limit(private_redis.url, client, RELIABLE) == []
    assert client.llen("order") == 1 and held(client) == 0
    with Connection(private_redis.url, transport=RELIABLE) as conn, \
            conn.SimpleQueue(QUEUE) as queue:
        message = queue.get(timeout=2)
        assert message.payload == {"n": 1}
        message.ack()


def test_the_stock_transport_loses_a_message_it_pops_at_the_memory_limit(private_redis,  # noqa: F811
                                                                          client):
    publish(private_redis.url)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        drain_at_the_limit(private_redis.url, client, None)
    # BRPOP took it; recording it as unacked was refused: it is nowhere.
    assert client.llen("order") == 0
    assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0


def enqueue(client: redis.Redis, trace_key: str, *, then: tuple[str, ...] = (),
            **payload: object) -> None:
    msg = MessageFactory(celery_app).build(
        "o2c.order.probe_step", args=[{"trace_key": trace_key, "sleep_once": {"order": 1},
                                       **payload}], trace_key=trace_key, then=then)
    assert AtomicWriter(client).run([Item(["always"], [msg.push_op()])]) == [True]


def runs(client: redis.Redis) -> list[tuple[str, str, int]]:
    calls = [json.loads(raw) for raw in client.lrange(PROBE_KEY, 0, -1)]
    return [(c["task"], c["trace_key"], c["retries"]) for c in calls]


def start_steps(client: redis.Redis, worker: ManagedProcess, tag: str) -> None:
    """Four steps that each write to Redis after a second, all taken before Redis refuses:
    a timeline entry, a retry, a dead letter, and the next step of a chain."""
    before = len(runs(client))
    enqueue(client, f"0065g0000000{tag}R1AAA", record=True)
    enqueue(client, f"0065g0000000{tag}T1AAA", fail={"order": 1})
    enqueue(client, f"0065g0000000{tag}B1AAA", fail={"order": "business"})
    enqueue(client, f"0065g0000000{tag}C1AAA", then=("o2c.order.probe_six",))
    wait_for(lambda: len(runs(client)) >= before + 4, timeout_s=10, what="four steps running")


def assert_all_done(client: redis.Redis, store: DeadLetterStore, tag: str) -> None:
    def done() -> bool:
        seen = runs(client)
        return (("o2c.order.probe_step", f"0065g0000000{tag}T1AAA", 1) in seen
                and ("o2c.order.probe_six", f"0065g0000000{tag}C1AAA", 0) in seen
                and bool(store.ids(trace_key=f"0065g0000000{tag}B1AAA"))
                and bool(client.llen(keys.timeline("o2c", f"0065g0000000{tag}R1AAA")))
                and client.llen("order") == 0 and held(client) == 0)

    wait_for(done, timeout_s=20, what="every step done once Redis takes writes")
    [letter] = store.many(store.ids(trace_key=f"0065g0000000{tag}B1AAA"))
    assert letter.category == "credit_hold"


def test_a_worker_rides_out_redis_refusing_writes(private_redis, client, workers):  # noqa: F811
    worker = start_worker(private_redis.url, queues="order", concurrency=4,
                          include="tests.probe_tasks,tests.delivery.short_publish")
    workers.append(worker)
    store = DeadLetterStore(client, prefix="o2c")

    # Out of memory: each step's write is refused, each goes back to the queue, where it
    # stays while every take is refused too.
    start_steps(client, worker, "0M")
    with out_of_memory(client):
        wait_for(lambda: client.llen("order") == 4, timeout_s=10, what="four steps returned")
        assert worker.process.poll() is None
        # Read outside a transaction: under OOM Redis refuses every MULTI, reads included.
        assert held(client) == 0 and not client.zcard(keys.dlq_index_status("o2c", "open"))
    assert_all_done(client, store, "0M")

    # MISCONF refuses even the requeue: the steps stay held by their consumer until then.
    start_steps(client, worker, "0F")
    with misconf(client, private_redis):
        wait_for(lambda: "Redis refuses writes" in worker.log_text(), timeout_s=10,
                 what="a refused write")
        assert worker.process.poll() is None
        assert held(client) + client.llen("order") == 4
    assert_all_done(client, store, "0F")
    assert worker.process.poll() is None
    assert not [line for line in worker.log_lines() if '"critical"' in line]
