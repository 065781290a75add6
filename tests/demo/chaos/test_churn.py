"""The churn loses an opportunity only once the schedule has won it: a loss sent before a
late win wave would leave the opportunity won (and rightly booked) while the churn waits
for its order to go."""

from __future__ import annotations

from typing import Any

from o2c_workers.demo.chaos.churn import LOST, PENDING, Churner
from o2c_workers.demo.chaos.plan import Churn


def _stage(sandbox: Any, opportunity: str) -> str:
    return str(sandbox.salesforce.simulator.store.get("Opportunity", opportunity)["StageName"])


def test_an_opportunity_is_lost_only_after_its_win(sandbox: Any) -> None:
    opportunity = sandbox.world.opportunity_ids[0]
    won: set[str] = set()
    plan = Churn(opportunity, invoiced=False, after_booking=False, lose_at_s=0.0, lost_s=5.0,
                 edit_after_s=1.0, win_after_s=1.0, line=1, add_qty=1)
    churner = Churner([plan], sf=sandbox.salesforce.session(), sf_url=sandbox.sf_url,
                      erp_url=sandbox.erp_url, env={}, shown=dict, won=lambda: won)
    played = churner.played[opportunity]
    before = _stage(sandbox, opportunity)

    churner._step(played, [], {})  # its time has come, but the schedule has not won it
    assert played.state == PENDING and played.lost_at is None
    assert _stage(sandbox, opportunity) == before

    http = sandbox.salesforce.session()
    http.post(f"{sandbox.sf_url}/_sandbox/opportunities/win", json={"ids": [opportunity]},
              timeout=5).raise_for_status()
    won.add(opportunity)
    churner._step(played, [], {})
    assert played.state == LOST and played.lost_at is not None
    assert _stage(sandbox, opportunity) == "Closed Lost"
