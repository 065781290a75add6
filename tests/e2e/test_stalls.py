"""Stalls with the real fleet: the receiver opens a transaction, the workers' steps move it
on, its closing milestone takes it out of flight. With its worker down a chain stops where
it is and is listed stalled once the shipped 300 s have passed (read with a later ``now``,
the setting untouched); when the worker comes, it finishes and is no longer listed."""

from __future__ import annotations

import time

import pytest
import requests

from o2c_workers import keys, timeline
from o2c_workers.stalls import stalled_transactions
from o2c_workers.status import transaction_status
from tests import soapmsg
from tests.e2e.conftest import TOKEN
from tests.plugins.workers import wait_for

STALL_AFTER_S = 300


def in_flight(o2c) -> set[str]:
    return {m.decode() for m in o2c.redis.zrange(keys.transaction_index_active("o2c"), 0, -1)}


@pytest.mark.slow
def test_a_chain_without_its_worker_stalls_then_finishes(o2c_factory) -> None:
    o2c = o2c_factory(world_args={"opportunities": 2, "accounts": 2}, order_worker=False)
    opportunities = o2c.ok_opportunities()
    o2c.win()
    wait_for(lambda: o2c.redis.llen("order") == len(opportunities),
             what="the order steps to wait on their queue")
    assert in_flight(o2c) == set(opportunities)
    later = time.time() + STALL_AFTER_S + 1
    assert stalled_transactions(o2c.redis, "o2c", stall_after_s=STALL_AFTER_S) == []
    stalls = stalled_transactions(o2c.redis, "o2c", stall_after_s=STALL_AFTER_S, now=later)
    assert sorted(s.trace_key for s in stalls) == sorted(opportunities)
    assert {s.last_event["event"] for s in stalls} == {"priced"}
    assert transaction_status(o2c.redis, "o2c", opportunities[0],
                              stall_after_s=STALL_AFTER_S, now=later)["stalled"] is True

    o2c.start_order_worker()
    o2c.wait_written_back(opportunities)
    o2c.wait_settled()
    assert in_flight(o2c) == set()
    assert stalled_transactions(o2c.redis, "o2c", stall_after_s=STALL_AFTER_S,
                                now=time.time() + 86400) == []


@pytest.mark.slow
def test_an_account_sync_opens_and_closes_its_transaction(o2c_factory) -> None:
    o2c = o2c_factory(world_args={"opportunities": 1, "accounts": 1})
    account = o2c.world.of("Account")[0]
    fields = {name: account[name] for name in ("Id", "Name", "BillingCountry",
                                               "CurrencyIsoCode")}
    body = soapmsg.envelope([soapmsg.notification("04l5g0000000ACCAAA", "Account", fields)],
                            org_id=o2c.world.org_id)
    answer = requests.post(f"{o2c.receiver_url}/salesforce/outbound?token={TOKEN}", data=body,
                           headers={"Content-Type": "text/xml; charset=UTF-8"}, timeout=10)
    assert answer.status_code == 200, answer.text
    wait_for(lambda: timeline.SYNCED in timeline.milestones(o2c.redis, "o2c", account["Id"]),
             what="the account to be synced")
    events = [e["event"] for e in timeline.read(o2c.redis, "o2c", account["Id"])]
    assert events == ["received", "customer_synced"]
    assert account["Id"] not in in_flight(o2c)
    assert transaction_status(o2c.redis, "o2c", account["Id"],
                              stall_after_s=STALL_AFTER_S)["stage"] == timeline.SYNCED
