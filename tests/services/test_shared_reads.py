"""The won opportunities of one outbound message read in one query (``shared_reads``),
against the sandbox's Salesforce and a real Redis: each step gets its own opportunity as it
is after the message came, once; a step that comes later, or finds Redis refusing, reads
alone."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from o2c_workers import keys, sfid
from o2c_workers.errors import InvalidPayload, NotFound
from o2c_workers.services import reading, shared_reads
from o2c_workers.services.shared_reads import GROUP_SIZE, ReadGroup, SharedReads
from tests.services.test_reading import calls, spent

P = "o2c"


@pytest.fixture
def reads(redis_client: redis.Redis) -> SharedReads:
    return SharedReads(redis_client, prefix=P)


def group_of(services, n: int) -> ReadGroup:
    ids = services.sandbox.world.opportunity_ids[:n]
    found = shared_reads.groups(ids, received_at=time.time())
    return found[sfid.to18(ids[0])]


def test_a_message_is_cut_into_groups_of_its_own():
    ids = [sfid.to18(f"0065g{n:010d}") for n in range(2 * GROUP_SIZE + 1)]
    at = 1_700_000_000.25
    found = shared_reads.groups([*ids, ids[0][:15]], received_at=at)
    first, second = found[ids[0]], found[ids[GROUP_SIZE]]
    assert first.ids == tuple(ids[:GROUP_SIZE]) and second.ids == tuple(ids[GROUP_SIZE:-1])
    # The last one is alone in its group: it reads alone.
    assert ids[-1] not in found
    assert first.key != second.key
    assert shared_reads.groups(ids[:2], received_at=at)[ids[0]].key != \
        shared_reads.groups(ids[:2], received_at=at + 1)[ids[0]].key
    assert shared_reads.groups(ids[:1], received_at=at) == {}
    assert ReadGroup.from_header(first.header()) == first


@pytest.mark.parametrize("header", [
    None, "x", {"key": "k"}, {"key": "k", "ids": ["nope", "x"]}, {"key": 1, "ids": []},
    {"key": "k", "ids": ["0065g0000000001"]}])
def test_a_header_that_does_not_parse_means_reading_alone(header):
    assert ReadGroup.from_header(header) is None


def test_the_first_step_reads_the_group_and_each_other_takes_its_own_once(services, reads,
                                                                        redis_client):
    group = group_of(services, 5)
    before = calls(services)
    first = reads.read(services.sf, group.ids[0], group)
    assert spent(services, before) == {("GET", "query"): 1}
    others = {opp: reads.read(services.sf, opp, group) for opp in group.ids[1:]}
    assert spent(services, before) == {("GET", "query"): 1}
    for opp, read in [(group.ids[0], first), *others.items()]:
        # As the chain's context carries a read between steps: JSON.
        alone = reading.read_opportunity(services.sf, opp)
        assert read.model_dump(mode="json", exclude={"read_at"}) == \
            alone.model_dump(mode="json", exclude={"read_at"})
        assert read.read_at >= first.read_at - 1
    assert redis_client.keys(f"{P}:read:{group.key}:*") == []
    # A redelivered step finds its read taken: it reads alone.
    before = calls(services)
    reads.read(services.sf, group.ids[1], group)
    assert spent(services, before) == {("GET", "query"): 1}
    assert 0 < redis_client.ttl(keys.read_lease(P, group.key)) <= shared_reads.ENTRY_TTL_S


def test_a_read_serves_only_its_own_messages_steps(services, reads):
    ids = services.sandbox.world.opportunity_ids[:3]
    now = time.time()
    mine = shared_reads.groups(ids, received_at=now)[sfid.to18(ids[0])]
    later = shared_reads.groups(ids, received_at=now + 5)[sfid.to18(ids[0])]
    reads.read(services.sf, ids[0], mine)
    before = calls(services)
    # The same opportunities in a later message: their own read, not the earlier one.
    reads.read(services.sf, ids[1], later)
    assert spent(services, before) == {("GET", "query"): 1}


def test_steps_that_start_together_share_one_read(services, reads):
    group = group_of(services, 8)
    before = calls(services)
    got: dict[str, str] = {}
    errors: list[BaseException] = []

    def step(opp: str) -> None:
        try:
            got[opp] = str(reads.read(services.sf, opp, group).opportunity["Id"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=step, args=(opp,)) for opp in group.ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert {sfid.to18(v) for v in got.values()} == set(group.ids)
    assert spent(services, before) == {("GET", "query"): 1}


def test_an_opportunity_missing_from_the_group_is_not_found_the_others_read(services, reads):
    ids = services.sandbox.world.opportunity_ids[:3]
    deleted = sfid.to18("0065L00009ZZZZZ")
    group = shared_reads.groups([*ids, deleted], received_at=time.time())[deleted]
    with pytest.raises(NotFound):
        reads.read(services.sf, deleted, group)
    before = calls(services)
    for opp in ids:
        reads.read(services.sf, opp, group)
    assert spent(services, before) == {}


def test_a_failed_group_read_leaves_no_lease_and_the_others_read_alone(services, reads,
                                                                      redis_client):
    group = group_of(services, 3)
    services.sandbox.salesforce.simulator.faults.configure(
        {"resource": "query", "status": 400, "errorCode": "INVALID_FIELD"})
    with pytest.raises(InvalidPayload):
        reads.read(services.sf, group.ids[0], group)
    assert not redis_client.exists(keys.read_lease(P, group.key))
    before = calls(services)
    reads.read(services.sf, group.ids[1], group)
    assert spent(services, before) == {("GET", "query"): 1}


def test_with_redis_refusing_a_step_reads_alone(services, redis_client):
    closed = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5,
                         retry=Retry(NoBackoff(), 0))
    refusing = SharedReads(closed, prefix=P)
    group = group_of(services, 3)
    before = calls(services)
    read = refusing.read(services.sf, group.ids[1], group)
    assert sfid.to18(str(read.opportunity["Id"])) == group.ids[1]
    assert spent(services, before) == {("GET", "query"): 1}
