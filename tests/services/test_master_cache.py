"""ERP master data served from the state Redis: warm, it costs the ERP no call; the change
feed makes it forget what changed; a Redis that fails or refuses means reading the ERP,
never a wrong answer. Real Redis, the sandbox's ERP over HTTP, no worker."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import redis
import requests

from o2c_workers import app as celery_app
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.enqueue import MessageFactory
from o2c_workers.erp import build_adapter
from o2c_workers.erp.cache import MasterCache
from o2c_workers.errors import BusinessError
from o2c_workers.services import pricing
from o2c_workers.sweeps.erp_feed import ErpFeed
from tests.refusing import out_of_memory, private_redis  # noqa: F401 - the fixture
from tests.services.test_pricing import POLICY, good


def api_calls(services: Any) -> list[str]:
    calls = requests.get(f"{services.sandbox.erp_url}/_sandbox/calls", timeout=5).json()
    return [f"{c['method']} {c['path']}" for c in calls["calls"]]


def priced(services: Any, opp: str) -> Any:
    return pricing.validate_order(services.won(opp), sf=services.sf, erp=services.erp,
                                  max_discount_percent=POLICY)


def item_price(services: Any, code: str, currency: str) -> dict[str, Any]:
    rows = services.erp.http.call("GET", "/api/resource/Item Price", params={
        "filters": f'[["item_code", "=", "{code}"], ["currency", "=", "{currency}"]]',
        "fields": '["name", "price_list_rate"]'})["data"]
    [row] = rows
    return dict(row)


def test_a_warm_cache_prices_the_next_order_without_asking_the_erp(services):
    opp = good(services)
    priced(services, opp)
    before = len(api_calls(services))
    ctx = priced(services, opp)
    assert ctx.pricing is not None
    assert api_calls(services)[before:] == [], "items, prices, tax and customer all cached"


def test_a_price_changed_in_the_erp_reaches_the_cache_through_the_change_feed(services,
                                                                             redis_client):
    opp = good(services)
    order = priced(services, opp).need_order()
    code, currency = order.lines[0].item_code, order.currency
    old = services.erp.item_prices([code], currency)[code]
    row = item_price(services, code, currency)
    services.erp.http.call("PUT", f"/api/resource/Item Price/{row['name']}",
                           body={"price_list_rate": str(old + 10)})
    before = len(api_calls(services))
    assert services.erp.item_prices([code], currency)[code] == old, "still the cached price"
    assert api_calls(services)[before:] == []

    feed = ErpFeed(services.settings, redis_client, services.erp, MessageFactory(celery_app))
    polled = feed.run()
    assert polled.invalidated >= 1
    before = len(api_calls(services))
    assert services.erp.item_prices([code], currency)[code] == old + 10
    assert api_calls(services)[before:] == ["GET /api/resource/Item Price"]
    # The next order is priced at the ERP's new price: the Salesforce price book has the
    # old one, so the step refuses with both prices named.
    with pytest.raises(BusinessError) as caught:
        priced(services, opp)
    assert caught.value.category == "price_mismatch"
    assert f"differs from the ERP price {old + 10}" in caught.value.message


def test_a_cached_price_that_would_refuse_is_read_again_first(services):
    """The ERP's price list changed back to what Salesforce has, and the feed has not run
    yet: the cache's old price does not refuse the order."""
    opp = good(services)
    order = priced(services, opp).need_order()
    code, currency = order.lines[0].item_code, order.currency
    price = services.erp.item_prices([code], currency)[code]
    services.erp.masters.fill(services.erp.masters.get("prices", [f"{currency}|{code}"])[1],
                              {f"{currency}|{code}": str(price + 5)})
    assert services.erp.item_prices([code], currency)[code] == price + 5
    before = len(api_calls(services))
    assert priced(services, opp).pricing is not None
    assert "GET /api/resource/Item Price" in api_calls(services)[before:]


def test_a_fill_after_an_invalidation_is_not_written(redis_client):
    cache = MasterCache(redis_client, "o2c", ttl_s=900)
    _, epoch = cache.get("prices", ["USD|GW-200"])
    cache.invalidate("prices")
    assert not cache.fill(epoch, {"USD|GW-200": "1.00"})
    assert cache.get("prices", ["USD|GW-200"])[0] == {}
    _, epoch = cache.get("prices", ["USD|GW-200"])
    assert cache.fill(epoch, {"USD|GW-200": "2.00"})
    assert cache.get("prices", ["USD|GW-200"])[0] == {"USD|GW-200": "2.00"}
    assert 0 < redis_client.ttl("o2c:erp:cache:prices") <= 900


def test_an_unreachable_redis_reads_the_erp(services):
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    erp = build_adapter(services.settings, services.erp.versions.client)
    erp.masters = MasterCache(dead, "o2c", ttl_s=900)
    opp = good(services)
    order = priced(services, opp).need_order()
    codes = sorted({line.item_code for line in order.lines})
    for _ in range(2):
        before = len(api_calls(services))
        assert erp.known_items(codes) == set(codes)
        assert erp.item_prices(codes, order.currency) == services.erp.item_prices(
            codes, order.currency, fresh=True)
        assert "GET /api/resource/Item" in api_calls(services)[before:], "asked each time"
    erp.close()


def test_a_redis_refusing_writes_reads_the_erp_and_answers_right(services, private_redis):  # noqa: F811
    client = redis.Redis.from_url(private_redis.url)
    erp = build_adapter(services.settings, services.erp.versions.client)
    erp.masters = MasterCache(client, "o2c", ttl_s=900)
    opp = good(services)
    order = priced(services, opp).need_order()
    codes = sorted({line.item_code for line in order.lines})
    with out_of_memory(client):
        before = len(api_calls(services))
        prices = erp.item_prices(codes, order.currency)
        assert prices == services.erp.item_prices(codes, order.currency, fresh=True)
        assert all(isinstance(p, Decimal) for p in prices.values())
        assert "GET /api/resource/Item Price" in api_calls(services)[before:]
        assert client.dbsize() == 0, "nothing written while Redis refuses"
    erp.close()


def test_the_reads_left_to_a_cold_pricing_step_go_out_together(services):
    opp = good(services)
    ctx = services.won(opp)
    requests.post(f"{services.sandbox.erp_url}/_sandbox/faults", json={"latency_ms": 200},
                  timeout=5).raise_for_status()
    before = len(api_calls(services))
    pricing.validate_order(ctx, sf=services.sf, erp=services.erp, max_discount_percent=POLICY)
    calls = requests.get(f"{services.sandbox.erp_url}/_sandbox/calls",
                         timeout=5).json()["calls"][before:]
    spans = [(c["time"], c["time"] + c["duration_ms"] / 1000, c["doctype"]) for c in calls]
    assert {s[2] for s in spans} >= {"Item", "Item Price", "Tax Rule"}
    # Items, the price list (then prices) and the tax rule (then its template): three
    # reads in flight before the first of them is answered.
    first_answered = min(end for _, end, _ in spans)
    assert len([s for s in spans if s[0] < first_answered]) == 3, spans
