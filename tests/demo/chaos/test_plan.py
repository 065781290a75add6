"""The chaos schedule: drawn from the seed alone, every fault kind in it, every
opportunity won once."""

from __future__ import annotations

from collections import Counter

from o2c_workers.demo.chaos.plan import (
    BROKER_KILL,
    MAINTENANCE,
    NODE_KILL,
    POOL_KILL,
    RECEIVER_KILL,
    REDIS_KILL,
    ChaosOptions,
    build_schedule,
)

IDS = [f"0065L00003A0B{n:03d}QAF" for n in range(300)]
WORKERS = ["customer", "pricing", "order", "invoice", "payment"]


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    opts = ChaosOptions()
    assert build_schedule(opts, IDS, WORKERS) == build_schedule(opts, IDS, WORKERS)
    other = build_schedule(ChaosOptions(seed=12), IDS, WORKERS)
    assert other.faults != build_schedule(opts, IDS, WORKERS).faults


def test_every_opportunity_is_won_once_and_the_calm_cohort_after_the_faults() -> None:
    schedule = build_schedule(ChaosOptions(), IDS, WORKERS)
    during = [i for e in schedule.events for i in e.ids]
    after = [i for wave in schedule.calm_waves for i in wave]
    assert sorted(during) == sorted(schedule.chaos_ids)
    assert after == schedule.calm_ids
    assert sorted(during + after) == sorted(IDS)
    assert len(schedule.calm_ids) == 60
    assert max(len(w) for w in schedule.calm_waves) <= 3


def test_every_fault_kind_happens_within_the_phase() -> None:
    for opts in (ChaosOptions(), ChaosOptions.smoke()):
        schedule = build_schedule(opts, IDS[:opts.opportunities], WORKERS)
        kinds = Counter(e.kind for e in schedule.faults)
        assert kinds[NODE_KILL] == opts.node_kills >= 1
        assert kinds[REDIS_KILL] == kinds[RECEIVER_KILL] == kinds[MAINTENANCE] == 1
        assert kinds[POOL_KILL] >= opts.chaos_s / opts.pool_kill_every_s[1] - 1
        assert all(0 < e.at_s < opts.chaos_s for e in schedule.faults)
        [window] = [e for e in schedule.faults if e.kind == MAINTENANCE]
        assert window.at_s + opts.maintenance_s <= opts.chaos_s
        assert {e.target for e in schedule.faults if e.kind == POOL_KILL} <= set(WORKERS)


def test_faults_can_be_left_out() -> None:
    opts = ChaosOptions.smoke(redis_restart=False, receiver_kill=False, maintenance_s=0.0,
                              node_kills=0)
    kinds = {e.kind for e in build_schedule(opts, IDS[:50], WORKERS).faults}
    assert kinds == {POOL_KILL}


def test_churn_takes_its_share_of_the_chaos_cohort_and_leaves_the_faults_as_they_were() -> None:
    designed = frozenset(IDS[:40])
    opts = ChaosOptions()
    schedule = build_schedule(opts, IDS, WORKERS, designed=designed)
    churned = [c.opportunity for c in schedule.churn]
    assert len(churned) == len(set(churned)) == 30
    assert sum(c.invoiced for c in schedule.churn) == 9
    assert set(churned) <= set(schedule.chaos_ids) - designed
    burst = {i for e in schedule.faults for i in e.ids}
    assert not set(churned) & burst
    low, high = opts.churn_lose_within
    assert all(low * opts.chaos_s <= c.lose_at_s <= high * opts.chaos_s and c.add_qty >= 1
               for c in schedule.churn)
    assert all(c.after_booking for c in schedule.churn if c.invoiced)
    assert build_schedule(opts, IDS, WORKERS, designed=designed) == schedule
    none = build_schedule(ChaosOptions(churn_share=0.0), IDS, WORKERS, designed=designed)
    assert none.churn == [] and none.events == schedule.events
    smoke = build_schedule(ChaosOptions.smoke(), IDS[:50], WORKERS)
    assert (len(smoke.churn), sum(c.invoiced for c in smoke.churn)) == (8, 1)


def test_on_rabbitmq_the_broker_node_is_killed_once_and_the_rest_stays_as_it_was() -> None:
    redis = build_schedule(ChaosOptions(), IDS, WORKERS)
    rabbit = build_schedule(ChaosOptions(broker="rabbitmq"), IDS, WORKERS)
    kills = [e for e in rabbit.faults if e.kind == BROKER_KILL]
    assert len(kills) == 1 and 0 < kills[0].at_s < ChaosOptions().chaos_s * 0.5
    assert [e for e in rabbit.faults if e.kind != BROKER_KILL] == redis.faults
    assert not [e for e in redis.faults if e.kind == BROKER_KILL]
    off = build_schedule(ChaosOptions(broker="rabbitmq", broker_restart=False), IDS, WORKERS)
    assert off.faults == redis.faults
