"""The delivery benchmark counts what it claims: a tiny round of each side drains
everything, runs each message once, and really runs the transport it names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from o2c_workers.dev.redis_runtime import RedisHandle, start_private, with_db
from tests.bench.delivery import BENCH_DB, SIDES, Side, run_round
from tests.bench.delivery_o2c import O2CWorkload, o2c_workload
from tests.bench.delivery_workloads import WORKLOADS, Workload

pytestmark = pytest.mark.slow

UNITS = {"task": 40, "chain": 10}
#: The command each transport takes a message with; the other side must never send it.
TAKES = {True: "blmove", False: "brpop"}


@pytest.fixture(scope="module")
def private_redis() -> Iterator[RedisHandle]:
    # Its own server: the benchmark flushes its database and resets the server's counters.
    handle = start_private()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def o2c() -> Iterator[O2CWorkload]:
    with o2c_workload(rounds=1) as workload:
        yield workload


def check_round(private_redis: RedisHandle, side: Side, workload: Workload, units: int,
                tmp_path) -> None:
    url = with_db(private_redis.url, BENCH_DB)
    client = redis.Redis.from_url(url)
    result = run_round(side, workload, client, url, units, tmp_path)
    assert result.extra_runs == 0
    assert result.left == 0
    assert result.seconds > 0 and result.units == units - max(1, units // 10)
    taken = result.commands[TAKES[side.reliable]]
    assert taken >= units * workload.steps
    assert result.commands[TAKES[not side.reliable]] == 0
    client.close()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.unit)
@pytest.mark.parametrize("side", SIDES, ids=lambda s: s.label)
def test_a_tiny_round_drains_everything_once_on_its_own_transport(
        private_redis: RedisHandle, side: Side, workload: Workload, tmp_path) -> None:
    check_round(private_redis, side, workload, UNITS[workload.unit], tmp_path)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("side", SIDES, ids=lambda s: s.label)
def test_a_tiny_round_of_the_o2c_chain_books_every_opportunity_once(
        private_redis: RedisHandle, o2c: O2CWorkload, side: Side, tmp_path) -> None:
    assert o2c.sandbox is not None
    before = o2c.erp_orders()
    check_round(private_redis, side, o2c, 8, tmp_path)
    assert o2c.erp_orders() == before + 8
