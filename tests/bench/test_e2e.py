"""The end-to-end benchmark counts what it claims: one tiny round per side books every
opportunity once, the plain chain makes exactly its calls (the watcher's own reads left
out), and a second order for an opportunity fails the round."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.bench.e2e import bench
from tests.bench.e2e_report import Round
from tests.bench.e2e_rounds import Bench, Plan, check_booked, run_round

pytestmark = pytest.mark.slow

ORDERS = 5
TINY = Plan(burst=ORDERS, paced=0, warm=2, rounds=1, life=0, accounts=5)


@pytest.fixture(scope="module")
def rounds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bench, Round, Round]]:
    with bench(TINY, Path(tmp_path_factory.mktemp("e2e"))) as (b, sides):
        ours = run_round(b, sides["ours"], "saturation", ORDERS, rate_per_s=None, tag="ours")
        sides["plain"].sizes = dict(sides["ours"].sizes)
        plain = run_round(b, sides["plain"], "saturation", ORDERS, rate_per_s=None,
                          tag="plain")
        yield b, ours, plain


@pytest.mark.timeout(120)
def test_each_side_books_every_opportunity_once_and_is_measured(rounds):
    _, ours, plain = rounds
    for r in (ours, plain):
        assert r.orders == ORDERS
        assert set(r.booking.booked_at) == set(r.booking.won_at)
        assert len(r.booking.won_at) == ORDERS
        assert all(r.booking.booked_at[i] > r.booking.won_at[i] for i in r.booking.won_at)
        assert r.erp["POST Sales Order"] == ORDERS
        assert r.cpu_s > 0 and r.redis_cpu_s > 0 and sum(r.redis.values()) > 0
        assert "config|resetstat" not in r.redis
    assert len(ours.steps["o2c.pricing.validate_order"]) >= ORDERS
    assert len(plain.steps["plain.submit_order"]) >= ORDERS
    assert set(ours.memory) >= {"web", "customer", "pricing", "order"}
    assert set(plain.memory) == {"web", "worker"}
    pools = sum(m.processes - 1 for name, m in ours.memory.items() if name != "web")
    assert plain.memory["worker"].processes - 1 == pools


@pytest.mark.timeout(60)
def test_the_plain_chain_makes_todays_calls_and_the_watchers_reads_are_left_out(rounds):
    _, _, plain = rounds
    assert plain.sf == Counter({("GET", "Account"): ORDERS, ("GET", "Opportunity"): 2 * ORDERS,
                                ("PATCH", "Opportunity"): ORDERS})
    for call in ("GET Item", "GET Price List", "GET Item Price", "GET Tax Rule",
                 "GET Sales Taxes and Charges Template", "GET get_customer_outstanding"):
        assert plain.erp[call] == ORDERS, call
    # The customer looked up and read (its credit), plus a create for a new account.
    assert 2 * ORDERS <= plain.erp["GET Customer"] <= 2 * ORDERS + TINY.accounts


@pytest.mark.timeout(60)
def test_a_second_order_for_one_opportunity_fails_the_check(rounds):
    b, ours, _ = rounds
    ids = sorted(ours.booking.won_at)
    check_booked(b.obs, ids, created=len(ids))
    with pytest.raises(RuntimeError, match="created 6 Sales Orders for 5"):
        check_booked(b.obs, ids, created=len(ids) + 1)
    doc = b.obs.orders_of(ids[:1])[ids[0]][0]
    answer = requests.post(f"{b.env['O2C_ERP_BASE_URL']}/api/resource/Sales Order", timeout=30,
                           headers={"Authorization": f"token {b.env['O2C_ERP_API_KEY']}:"
                                                     f"{b.env['O2C_ERP_API_SECRET']}"},
                           json={"customer": doc["customer"], "salesforce_id": f"{ids[0]}-X",
                                 "po_no": ids[0], "currency": doc["currency"],
                                 "docstatus": 1, "items": [
                                     {"item_code": row["item_code"], "qty": str(row["qty"])}
                                     for row in doc["items"]]})
    answer.raise_for_status()
    with pytest.raises(RuntimeError, match=f"{ids[0]}: 2 ERP orders"):
        check_booked(b.obs, ids, created=len(ids))
