"""``python -m tests.bench.e2e_sandbox OUT.json ...``: the end-to-end benchmark's sandbox.

Both simulators (``start_sandbox``) in a process of their own, so that neither side's
figures share an interpreter with them or with the benchmark. The world has no account on
credit hold, no missing tax rule and no unknown item, and no credit limit a run reaches (the
checks are still asked); the ERP answers every call 20 ms late. Sales Orders are never
invoiced on their own: the benchmark invoices the orders it follows through their life
(``/_sandbox/orders/{name}/invoice``), and their payments follow ``PAYMENT_DELAY_S`` later.
Once both listen, it writes their settings and the opportunities (with their accounts) to
``OUT.json``, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from decimal import Decimal
from pathlib import Path

from o2c_workers.sandbox import start_sandbox
from o2c_workers.sandbox.erp import ErpConfig, Faults
from o2c_workers.sandbox.salesforce import SalesforceConfig
from o2c_workers.sandbox.world import generate_world

#: Never reached in a run: an order is invoiced only when the benchmark asks.
INVOICE_DELAY_S = 10 * 86_400.0
PAYMENT_DELAY_S = 1.0
CREDIT_LIMIT = Decimal("1e15")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.e2e_sandbox")
    parser.add_argument("out", type=Path)
    parser.add_argument("--opportunities", type=int, required=True)
    parser.add_argument("--accounts", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--erp-webhook-url", required=True)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    world = generate_world(seed=args.seed, accounts=args.accounts,
                           opportunities=args.opportunities, credit_hold=0, missing_tax=0,
                           unknown_item=0)
    world.erp.credit_limits.clear()
    world.erp.default_credit_limit = CREDIT_LIMIT
    box = start_sandbox(
        world=world, erp_port=0, sf_port=0,
        erp_config=ErpConfig(webhook_url=args.erp_webhook_url, invoice_delay_s=INVOICE_DELAY_S,
                             payment_delay_s=PAYMENT_DELAY_S, seed=args.seed,
                             faults=Faults(latency_ms=args.latency_ms)),
        sf_config=SalesforceConfig(org_id=world.org_id, seed=args.seed))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        opportunities = [[opp_id, str(world.get("Opportunity", opp_id)["AccountId"])]
                         for opp_id in world.opportunity_ids]
        partial = args.out.with_suffix(".part")
        partial.write_text(json.dumps({"env": box.env(), "opportunities": opportunities}))
        os.replace(partial, args.out)
        stopping.wait()
    finally:
        box.stop()


if __name__ == "__main__":
    main()
