"""The adapter under the simulator's faults: lost answers, 5xx, 429, maintenance, auth,
a dead ERP, the fleet-wide limiter, and secrets kept out of logs and errors."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections import Counter

import pytest
import redis

from config.settings import Settings, load_settings
from o2c_workers import keys
from o2c_workers.erp import QuickRetry, build_adapter, build_erpnext
from o2c_workers.errors import AuthError, O2CError, Throttled, Transient, UnknownOutcome
from o2c_workers.ratelimit import Limiter
from o2c_workers.sandbox.world import World
from tests.erp.support import (
    api_calls,
    customer_of,
    good_opportunities,
    make_adapter,
    order_of,
    sandbox,
    settings_for,
    start_erp,
)

__all__ = ["make_adapter", "start_erp"]

ONE_TRY = QuickRetry(attempts=1)


def test_an_answer_lost_after_commit_is_resolved_by_a_lookup(world: World, start_erp,
                                                             make_adapter) -> None:
    erp = start_erp(faults={"timeout_after_commit_rate": 1.0, "timeout_hang_s": 1.0})
    adapter = make_adapter(settings_for(erp, erp_timeout_s=0.3))
    order = order_of(world, good_opportunities(world)[0])
    customer = adapter.ensure_customer(customer_of(world, order.account_id))
    booked = adapter.submit_sales_order(order, customer)
    assert (booked.salesforce_id, booked.docstatus) == (order.opportunity_id, 1)
    stats = sandbox(erp, "stats")
    created = stats["documents_created"]
    assert (created["Customer"], created["Sales Order"]) == (1, 1)
    assert stats["faults_injected"]["timeout_after_commit"] == 2
    assert stats["duplicates_refused"]["total"] == 0
    assert len(api_calls(erp, "POST", "Sales Order")) == 1
    assert adapter.submit_sales_order(order, customer) == booked
    assert sandbox(erp, "stats")["documents_created"]["Sales Order"] == 1


def test_5xx_reads_are_retried_then_raised_as_transient(start_erp, make_adapter) -> None:
    erp = start_erp(faults={"error_rate": 1.0, "error_status": 502})
    adapter = make_adapter(settings_for(erp))
    with pytest.raises(Transient) as caught:
        adapter.known_items(["GW-200"])
    assert type(caught.value) is Transient and caught.value.status == 502
    assert [c["status"] for c in api_calls(erp)] == [502, 502, 502]


def test_5xx_on_create_is_looked_up_retried_and_booked_once(world: World, start_erp,
                                                            make_adapter) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp), retry=QuickRetry(attempts=6, base_s=0.01,
                                                               cap_s=0.05))
    order = order_of(world, good_opportunities(world)[0])
    customer = adapter.ensure_customer(customer_of(world, order.account_id))
    sandbox(erp, "faults", {"error_rate": 0.5})
    booked = adapter.submit_sales_order(order, customer)
    assert booked.salesforce_id == order.opportunity_id
    statuses = Counter(c["status"] for c in api_calls(erp))
    assert statuses[500] >= 1 and set(statuses) <= {200, 500}
    assert sandbox(erp, "stats")["documents_created"]["Sales Order"] == 1


def test_5xx_on_every_create_gives_transient_after_bounded_tries(world: World, start_erp,
                                                                 make_adapter) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp))
    order = order_of(world, good_opportunities(world)[0])
    customer = adapter.ensure_customer(customer_of(world, order.account_id))
    assert adapter.price_list(order.currency)  # remembered: the order's POST comes first
    sandbox(erp, "faults", {"error_rate": 1.0})
    with pytest.raises(Transient) as caught:
        adapter.submit_sales_order(order, customer)
    assert not isinstance(caught.value, UnknownOutcome)
    assert len(api_calls(erp, "POST", "Sales Order")) == 3
    assert len(api_calls(erp, "GET", "Sales Order")) == 9  # a retried lookup after each POST
    assert sandbox(erp, "stats")["documents_created"].get("Sales Order", 0) == 0


def test_429_raises_throttled_and_pauses_the_whole_fleet(start_erp, make_adapter,
                                                         redis_client: redis.Redis) -> None:
    erp = start_erp(faults={"rate_limit_per_s": 1})
    settings = settings_for(erp, erp_max_concurrency=8, key_prefix=f"t{uuid.uuid4().hex[:8]}")
    first = make_adapter(settings, limiter=Limiter.from_settings(redis_client, settings),
                         retry=ONE_TRY)
    first.known_items(["GW-200"])
    with pytest.raises(Throttled) as caught:
        first.known_items(["GW-200"])
    assert caught.value.status == 429 and caught.value.retry_after_s == 1.0
    pause_key = keys.limiter_pause(settings.key_prefix, "erp")
    assert 0 < redis_client.pttl(pause_key) <= 1000
    # Another worker of the fleet waits the pause out instead of hitting the ERP.
    other = build_adapter(settings, redis_client)
    started = time.monotonic()
    assert other.known_items(["GW-200"]) == {"GW-200"}
    other.close()
    assert time.monotonic() - started >= 0.5
    assert Counter(c["status"] for c in api_calls(erp)) == {200: 2, 429: 1}


def test_429_is_retried_quickly_after_retry_after(start_erp, make_adapter) -> None:
    erp = start_erp(faults={"rate_limit_per_s": 1})
    adapter = make_adapter(settings_for(erp))
    adapter.known_items(["GW-200"])
    assert adapter.known_items(["GW-200"]) == {"GW-200"}
    assert [c["status"] for c in api_calls(erp)] == [200, 429, 200]


def test_maintenance_is_transient_with_retry_after(world: World, start_erp,
                                                   make_adapter) -> None:
    erp = start_erp(faults={"maintenance_for_s": 30})
    adapter = make_adapter(settings_for(erp))
    with pytest.raises(Transient) as caught:
        adapter.tax_rate("Germany")
    assert (caught.value.status, caught.value.retry_after_s) == (503, 30.0)
    assert len(api_calls(erp)) == 1  # a 30 s wait is the caller's (Celery's), not ours
    order = order_of(world, good_opportunities(world)[0])
    customer = customer_of(world, order.account_id)
    with pytest.raises(Transient):
        adapter.ensure_customer(customer)
    assert len(api_calls(erp)) == 2


def test_401_is_an_auth_error_and_never_retried(start_erp, make_adapter) -> None:
    erp = start_erp()
    adapter = make_adapter(settings_for(erp, erp_api_secret="wrong-secret-51ee"))
    with pytest.raises(AuthError) as caught:
        adapter.known_items(["GW-200"])
    assert caught.value.status == 401 and not caught.value.retryable
    assert [c["status"] for c in api_calls(erp)] == [401]


def test_a_dead_erp_is_transient_even_for_a_create(world: World, make_adapter) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = settings_for_url(f"http://127.0.0.1:{port}")
    adapter = make_adapter(settings)
    order = order_of(world, good_opportunities(world)[0])
    with pytest.raises(Transient) as caught:
        adapter.ensure_customer(customer_of(world, order.account_id))
    assert type(caught.value) is Transient and caught.value.reason == "connect"


def settings_for_url(url: str) -> Settings:
    return load_settings(erp_base_url=url, erp_api_key="k", erp_api_secret="s",
                         erp_connect_timeout_s=0.5, erp_timeout_s=0.5)


def test_the_fleet_stays_under_the_rate_limit(start_erp, redis_client: redis.Redis,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    erp = start_erp()
    monkeypatch.setenv("O2C_ERP_RATE_LIMIT", "10/second")
    monkeypatch.setenv("O2C_KEY_PREFIX", f"t{uuid.uuid4().hex[:8]}")
    settings = settings_for(erp)
    assert settings.erp_rate_limit == "10/second"
    todo = list(range(40))
    lock, errors = threading.Lock(), []

    def worker() -> None:
        # The ERP itself, past the master-data cache: every read is a call.
        adapter = build_erpnext(settings, redis_client)
        try:
            while True:
                with lock:
                    if not todo:
                        return
                    todo.pop()
                adapter.known_items(["GW-200"])
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            adapter.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    stats = sandbox(erp, "stats")
    assert stats["calls"]["total"] == 40 and stats["calls"]["by_status"] == {"200": 40}
    assert stats["peak_requests_per_s"]["received"] <= 10
    assert time.monotonic() - started >= 3.0


def test_no_secret_in_logs_or_errors(world: World, start_erp, make_adapter,
                                     caplog: pytest.LogCaptureFixture) -> None:
    key, secret, wrong = "key-3c9e71", "secret-a41f0d77", "secret-wrong-5b2e"
    caplog.set_level(logging.DEBUG)
    erp = start_erp(api_key=key, api_secret=secret,
                    faults={"timeout_after_commit_rate": 1.0, "timeout_hang_s": 0.5})
    adapter = make_adapter(settings_for(erp, erp_api_key=key, erp_api_secret=secret,
                                        erp_timeout_s=0.2))
    errors: list[O2CError] = []
    order = order_of(world, good_opportunities(world)[0])
    customer = adapter.ensure_customer(customer_of(world, order.account_id))
    adapter.submit_sales_order(order, customer)
    sandbox(erp, "faults", {"error_rate": 1.0, "timeout_after_commit_rate": 0.0})
    for call in (lambda: adapter.known_items(["X"]),
                 lambda: make_adapter(settings_for(erp, erp_api_key=key, erp_api_secret=wrong)
                                      ).tax_rate("Germany")):
        with pytest.raises(Transient) as caught:
            call()
        errors.append(caught.value)
    sandbox(erp, "faults", {"error_rate": 0.0})
    with pytest.raises(AuthError) as denied:
        make_adapter(settings_for(erp, erp_api_key=key, erp_api_secret=wrong)).known_items(["X"])
    errors.append(denied.value)
    shown = [caplog.text, repr(adapter.http._auth), repr(adapter.http.session.headers)]
    shown += [f"{e!s} {e!r} {e.to_dict()} {e.body}" for e in errors]
    for text in shown:
        for value in (key, secret, wrong):
            assert value not in text
    assert "ERP POST" in caplog.text or "ERP GET" in caplog.text
