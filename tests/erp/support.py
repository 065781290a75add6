"""Shared helpers of the ERP adapter tests: a simulator per test, settings, world → models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from config.settings import Settings, load_settings
from o2c_workers.erp import ErpNextAdapter, QuickRetry
from o2c_workers.models import CustomerData, OrderData, OrderLine
from o2c_workers.sandbox.erp import RunningErp
from o2c_workers.sandbox.world import World

API_KEY, API_SECRET = "sandbox-key", "sandbox-secret"
#: Quick retries that keep the tests fast: the same policy, shorter waits.
FAST = QuickRetry(attempts=3, base_s=0.02, cap_s=0.1, max_retry_after_s=2.0)


def settings_for(erp: RunningErp, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"erp_base_url": erp.url, "erp_api_key": API_KEY,
                              "erp_api_secret": API_SECRET, "erp_connect_timeout_s": 1.0,
                              "erp_timeout_s": 3.0, **overrides}
    return load_settings(**values)


def sandbox(erp: RunningErp, route: str, body: Any = None) -> Any:
    url = f"{erp.url}/_sandbox/{route}"
    answer = requests.get(url, timeout=5) if body is None else \
        requests.post(url, json=body, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def api_calls(erp: RunningErp, method: str | None = None,
              doctype: str | None = None) -> list[dict[str, Any]]:
    calls = sandbox(erp, "calls")["calls"]
    return [c for c in calls if (method is None or c["method"] == method)
            and (doctype is None or c["doctype"] == doctype)]


def customer_of(world: World, account_id: str) -> CustomerData:
    account = world.get("Account", account_id)
    return CustomerData(salesforce_id=account["Id"], name=account["Name"],
                        country=account["BillingCountry"], currency=account["CurrencyIsoCode"],
                        account_number=account["AccountNumber"], city=account["BillingCity"])


def order_of(world: World, opportunity_id: str) -> OrderData:
    opp = world.get("Opportunity", opportunity_id)
    lines = [OrderLine(salesforce_id=line["Id"], item_code=line["ProductCode"],
                       quantity=line["Quantity"], list_price=line["ListPrice"],
                       unit_price=line["UnitPrice"],
                       discount_percent=line["Discount"] or Decimal(0), total=line["TotalPrice"])
             for line in world.line_items(opp["Id"])]
    return OrderData(opportunity_id=opp["Id"], account_id=opp["AccountId"], name=opp["Name"],
                     currency=opp["CurrencyIsoCode"], close_date=opp["CloseDate"], lines=lines,
                     amount=opp["Amount"])


def good_opportunities(world: World) -> list[str]:
    """Opportunities built to go through, discounted lines first."""
    ids = [i for i in world.opportunity_ids if i not in world.expected_failures]
    return sorted(ids, key=lambda i: not any(line["Discount"] for line in world.line_items(i)))


def failing(world: World, category: str) -> str:
    return next(i for i, c in world.expected_failures.items() if c == category)


@pytest.fixture
def start_erp(world: World, erp_factory: Callable[..., RunningErp]
              ) -> Callable[..., RunningErp]:
    """Start ERP simulators on the world's seed (``erp_factory``: free ports, stopped after
    the test)."""

    def start(*, faults: dict[str, Any] | None = None, **config: Any) -> RunningErp:
        return erp_factory(world.erp, faults=faults or {}, **config)

    return start


@pytest.fixture
def make_adapter() -> Iterator[Callable[..., ErpNextAdapter]]:
    """Adapters with the fast retry policy unless told otherwise; all closed after."""
    made: list[ErpNextAdapter] = []

    def make(settings: Settings, **options: Any) -> ErpNextAdapter:
        options.setdefault("retry", FAST)
        adapter = ErpNextAdapter(settings, **options)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()
