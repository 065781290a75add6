"""The real O2C chain as a delivery benchmark workload, against the sandbox.

Each round wins fresh opportunities in the Salesforce simulator and pre-loads their chains
exactly as the receiver enqueues a Closed Won notification (``ensure_customer`` →
``validate_order`` → ``submit_order`` → ``write_back``, the fleet's own tasks). The ERP
simulator answers with no added latency, and its invoices and payments are pushed out of
the run's reach, so the chain is the whole of the work.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests

from config.routes import OPPORTUNITY_WON
from o2c_workers import sfid
from o2c_workers.receiver.records import validate_record
from o2c_workers.sandbox import Sandbox, start_sandbox
from o2c_workers.sandbox.erp import ErpConfig
from o2c_workers.sandbox.salesforce import SalesforceConfig
from o2c_workers.sandbox.world import generate_world
from tests.bench.delivery_workloads import Workload

#: Accounts of the generated org: their ERP customers are created in the first round's
#: warm-up, then only looked up.
ACCOUNTS = 20
#: Never reached in a run: no invoice or payment (nor their webhooks) competes with it.
LIFECYCLE_DELAY_S = 86_400.0
#: Orders are never invoiced here, so each account's outstanding amount only grows: a
#: credit limit no run reaches keeps every chain on its happy path.
CREDIT_LIMIT = Decimal("1e12")


@dataclass
class O2CWorkload(Workload):
    sandbox: Sandbox | None = None
    #: Opportunities not yet used by a round, in the world's order.
    fresh: list[str] = field(default_factory=list)

    def payloads(self, units: int, marks: list[int]) -> Iterator[tuple[str, dict[str, Any]]]:
        assert self.sandbox is not None
        if len(self.fresh) < units:
            raise RuntimeError("the sandbox world has no fresh opportunities left")
        chosen, self.fresh = self.fresh[:units], self.fresh[units:]
        requests.post(f"{self.sandbox.sf_url}/_sandbox/opportunities/win",
                      json={"ids": chosen}, timeout=60,
                      verify=self.sandbox.ca_file or True).raise_for_status()
        now = time.time()
        for n, opp_id in enumerate(chosen):
            fields = {**self.sandbox.world.get("Opportunity", opp_id), "StageName": "Closed Won"}
            record = validate_record("Opportunity", fields).model_dump(mode="json",
                                                                       exclude_none=True)
            trace_key = sfid.to18(opp_id)
            yield trace_key, {
                "trace_key": trace_key, "notification_id": f"04lBENCH{n:010d}",
                "organization_id": self.sandbox.world.org_id, "action_id": "04kBENCH",
                "sobject_type": "Opportunity", "route": "opportunity_won",
                "received_at": now, "record": record}

    def env(self) -> dict[str, str]:
        assert self.sandbox is not None
        return self.sandbox.env()

    def erp_orders(self) -> int:
        """How many Sales Orders the ERP simulator holds."""
        assert self.sandbox is not None
        cfg = self.sandbox.erp_config
        response = requests.get(
            f"{self.sandbox.erp_url}/api/resource/Sales Order",
            params={"limit_page_length": "0"}, timeout=30,
            headers={"Authorization": f"token {cfg.api_key}:{cfg.api_secret}"})
        response.raise_for_status()
        return len(response.json()["data"])


#: Chains per round, and with ``--quick``.
UNITS_FULL, UNITS_QUICK = 200, 20


@contextmanager
def o2c_workload(*, rounds: int) -> Iterator[O2CWorkload]:
    """The O2C chain on a fresh sandbox with fresh opportunities for ``rounds`` rounds per
    side, one worker per domain queue it crosses."""
    opportunities = UNITS_FULL * rounds * 2
    world = generate_world(seed=11, accounts=ACCOUNTS, opportunities=opportunities,
                           credit_hold=0, missing_tax=0, unknown_item=0)
    world.erp.credit_limits.clear()
    world.erp.default_credit_limit = CREDIT_LIMIT
    sandbox = start_sandbox(
        world=world, erp_port=0, sf_port=0,
        erp_config=ErpConfig(invoice_delay_s=LIFECYCLE_DELAY_S,
                             payment_delay_s=LIFECYCLE_DELAY_S),
        sf_config=SalesforceConfig(org_id=world.org_id))
    try:
        yield O2CWorkload("O2C chain (sandbox, ERP latency 0)", OPPORTUNITY_WON,
                          ("customer", "pricing", "order"), "chain", UNITS_FULL,
                          UNITS_QUICK, sandbox=sandbox,
                          fresh=list(world.opportunity_ids))
    finally:
        sandbox.stop()
