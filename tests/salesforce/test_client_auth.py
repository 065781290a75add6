"""The client's OAuth: both grants, the token cache, refresh on 401, and no secret in logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from config.settings import ConfigError
from o2c_workers.errors import AuthError
from o2c_workers.sandbox.salesforce import SalesforceServer
from o2c_workers.sandbox.world import World
from tests.plugins.sandbox import rsa_key_pair
from tests.salesforce.test_client import api_calls, client_for, settings_for

SECRET = "sandbox-client-secret"


def _jwt_overrides(handle: SalesforceServer, key_file: Path) -> dict[str, object]:
    return {"salesforce_client_secret": None,
            "salesforce_username": handle.simulator.config.username,
            "salesforce_private_key_file": str(key_file)}


def _tokens_issued(handle: SalesforceServer) -> int:
    return handle.simulator.authority.issued


def test_client_credentials_token_is_fetched_once(salesforce: SalesforceServer,
                                                  world: World) -> None:
    client = client_for(salesforce)
    for account in world.of("Account")[:3]:
        client.get_account(account["Id"])
    assert _tokens_issued(salesforce) == 1


def test_jwt_bearer_grant(salesforce_factory: Callable[..., SalesforceServer], world: World,
                          keys: tuple[bytes, str], tmp_path: Path) -> None:
    private, public = keys
    handle = salesforce_factory(jwt_public_key=public)
    key_file = tmp_path / "sf-key.pem"
    key_file.write_bytes(private)
    client = client_for(handle, **_jwt_overrides(handle, key_file))
    opp = world.of("Opportunity")[0]
    assert client.get_opportunity(opp["Id"])["Amount"] == opp["Amount"]
    assert _tokens_issued(handle) == 1


def test_jwt_signed_with_another_key_is_refused(
        salesforce_factory: Callable[..., SalesforceServer], world: World,
        keys: tuple[bytes, str], tmp_path: Path) -> None:
    handle = salesforce_factory(jwt_public_key=keys[1])
    other_private, _ = rsa_key_pair()
    key_file = tmp_path / "other.pem"
    key_file.write_bytes(other_private)
    client = client_for(handle, **_jwt_overrides(handle, key_file))
    with pytest.raises(AuthError) as caught:
        client.get_account(world.of("Account")[0]["Id"])
    assert caught.value.reason == "invalid_grant" and caught.value.status == 400
    assert "PRIVATE KEY" not in str(caught.value) and not caught.value.retryable
    assert api_calls(handle) == {}


def test_unreadable_or_bad_private_key_is_an_auth_error(salesforce: SalesforceServer,
                                                        world: World, tmp_path: Path) -> None:
    missing = client_for(salesforce, **_jwt_overrides(salesforce, tmp_path / "absent.pem"))
    with pytest.raises(AuthError) as caught:
        missing.get_account(world.of("Account")[0]["Id"])
    assert caught.value.reason == "private_key_unreadable"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n"
                       "-----END PRIVATE KEY-----\n")
    broken = client_for(salesforce, **_jwt_overrides(salesforce, garbage))
    with pytest.raises(AuthError) as caught:
        broken.get_account(world.of("Account")[0]["Id"])
    assert caught.value.reason == "private_key_invalid"
    assert "c2VjcmV0" not in str(caught.value) and caught.value.__cause__ is None


def test_missing_credentials_fail_fast(salesforce: SalesforceServer) -> None:
    with pytest.raises(ConfigError, match="O2C_SALESFORCE_PRIVATE_KEY_FILE"):
        client_for(salesforce, salesforce_client_secret=None, salesforce_username="u@x")
    with pytest.raises(ConfigError, match="https"):
        client_for(salesforce, salesforce_instance_url=salesforce.url.replace("https", "http"))


def test_bad_client_secret_is_an_auth_error_without_the_secret(
        salesforce: SalesforceServer, world: World, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-secret-value-123"
    caplog.set_level(logging.DEBUG)
    client = client_for(salesforce, salesforce_client_secret=wrong)
    with pytest.raises(AuthError) as caught:
        client.get_account(world.of("Account")[0]["Id"])
    assert caught.value.reason == "invalid_client" and caught.value.status == 400
    assert wrong not in str(caught.value) and wrong not in repr(caught.value.to_dict())
    assert wrong not in caplog.text
    assert api_calls(salesforce) == {}


def test_expired_token_is_refreshed_transparently(
        salesforce_factory: Callable[..., SalesforceServer], world: World) -> None:
    handle = salesforce_factory(token_lifetime_s=0.3)
    client = client_for(handle)
    account_id = world.of("Account")[0]["Id"]
    client.get_account(account_id)
    time.sleep(0.4)
    assert client.get_account(account_id)["Id"] == account_id
    client.update("Account", account_id, {"ERP_Customer_Number__c": "CUST-1"})
    assert _tokens_issued(handle) == 2
    # The org counts no call it refused with 401, so the stale-token call costs nothing.
    assert api_calls(handle) == {("GET", "Account"): 2, ("PATCH", "Account"): 1}


def test_revoked_sessions_are_refreshed(salesforce: SalesforceServer, world: World) -> None:
    client = client_for(salesforce)
    client.update_many([("Account", world.of("Account")[0]["Id"], {"Phone": "+1 555 0100"})])
    salesforce.simulator.authority.revoke_all()
    client.update_many([("Account", world.of("Account")[0]["Id"], {"Phone": "+1 555 0101"})])
    assert _tokens_issued(salesforce) == 2


def test_a_token_refused_twice_is_an_auth_error(
        salesforce_factory: Callable[..., SalesforceServer], world: World) -> None:
    handle = salesforce_factory(token_lifetime_s=0.0)
    client = client_for(handle)
    with pytest.raises(AuthError) as caught:
        client.get_account(world.of("Account")[0]["Id"])
    assert caught.value.status == 401 and caught.value.reason == "INVALID_SESSION_ID"
    assert _tokens_issued(handle) == 2
    assert api_calls(handle) == {}


def test_no_token_secret_or_key_reaches_the_logs(
        salesforce_factory: Callable[..., SalesforceServer], world: World,
        keys: tuple[bytes, str], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    private, public = keys
    handle = salesforce_factory(jwt_public_key=public, token_lifetime_s=0.2)
    key_file = tmp_path / "sf-key.pem"
    key_file.write_bytes(private)
    account_id = world.of("Account")[0]["Id"]
    for overrides in ({}, _jwt_overrides(handle, key_file)):
        client = client_for(handle, **overrides)
        client.get_account(account_id)
        time.sleep(0.3)
        client.update("Account", account_id, {"ERP_Customer_Number__c": "CUST-7"})
        client.close()
    assert _tokens_issued(handle) == 4
    messages = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    assert "salesforce access token obtained" in messages
    assert "session expired" in messages
    token_prefix = world.org_id[:15] + "!"
    key_body = private.decode().splitlines()[1]
    for secret in (token_prefix, SECRET, key_body, "eyJ", "Bearer "):
        assert secret not in messages


def test_settings_repr_hides_the_secret(salesforce: SalesforceServer) -> None:
    assert SECRET not in repr(settings_for(salesforce))
