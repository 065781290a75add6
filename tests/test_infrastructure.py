"""Redis refusing writes is infrastructure, however it says so: real answers of a real server
to a command, a pipeline and a Lua script; a defect of ours is not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from o2c_workers.atomic import AtomicWriter, Item
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.infrastructure import is_infrastructure
from tests.refusing import misconf, out_of_memory, private_redis, read_only  # noqa: F401

pytestmark = pytest.mark.slow


def answers(client: redis.Redis) -> dict[str, BaseException]:
    """What a plain write, a transaction and our guarded batch script meet."""
    attempts: dict[str, Callable[[], Any]] = {
        "command": lambda: client.lpush("order", "m"),
        "pipeline": lambda: client.pipeline(transaction=True).hincrby("txn", "n", 1)
        .expire("txn", 60).execute(),
        "script": lambda: AtomicWriter(client).run([Item(["mark", "mark:1"],
                                                         [["LPUSH", "order", "m"]])]),
    }
    caught: dict[str, BaseException] = {}
    for name, attempt in attempts.items():
        with pytest.raises(redis.RedisError) as error:
            attempt()
        caught[name] = error.value
    return caught


def test_out_of_memory_read_only_and_misconf_are_infrastructure(private_redis) -> None:  # noqa: F811
    client = redis.Redis.from_url(private_redis.url)
    seen: dict[str, dict[str, BaseException]] = {}
    with out_of_memory(client):
        seen["oom"] = answers(client)
    with misconf(client, private_redis):
        seen["misconf"] = answers(client)
    with read_only(client):
        seen["readonly"] = answers(client)
    for refusal, caught in seen.items():
        for where, exc in caught.items():
            assert is_infrastructure(exc), (refusal, where, type(exc), exc)
    assert isinstance(seen["oom"]["script"], redis.exceptions.OutOfMemoryError)
    assert isinstance(seen["readonly"]["pipeline"], redis.exceptions.ReadOnlyError)
    # redis-py has no class for MISCONF: the answer's own code says it, even in a pipeline.
    assert type(seen["misconf"]["pipeline"]) is redis.ResponseError
    assert str(seen["misconf"]["pipeline"]).startswith("Command # 1")
    client.close()


def test_unreachable_is_infrastructure_and_our_defects_are_not(private_redis) -> None:  # noqa: F811
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    with pytest.raises(redis.ConnectionError) as unreachable:
        dead.ping()
    assert is_infrastructure(unreachable.value)
    client = redis.Redis.from_url(private_redis.url)
    client.set("order", "not a list")
    defects: list[Callable[[], Any]] = [
        lambda: client.lpush("order", "m"),  # WRONGTYPE
        lambda: client.pipeline(transaction=True).lpush("order", "m").execute(),
        lambda: client.eval("return nosuch.field", 0),  # a bug in a script
        lambda: client.eval("return redis.call('NOSUCHCOMMAND')", 0),
    ]
    for defect in defects:
        with pytest.raises(redis.ResponseError) as error:
            defect()
        assert not is_infrastructure(error.value), error.value
    client.close()
