"""OAuth grants, session checks, API limits and the error shapes, over real HTTPS."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest
import requests

from o2c_workers.sandbox.salesforce import SalesforceServer
from o2c_workers.sandbox.world import World
from tests.plugins.sandbox import client_credentials, rsa_key_pair

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _token(handle: SalesforceServer, **form: str) -> requests.Response:
    return handle.session().post(f"{handle.url}/services/oauth2/token", data=form, timeout=5)


def _assertion(private: bytes, **claims: object) -> str:
    body = {"iss": "sandbox-client-id", "sub": "integration@o2c.sandbox",
            "aud": "https://login.salesforce.com", "exp": int(time.time()) + 180, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, private,
                      algorithm="RS256")


def test_client_credentials_answer_like_salesforce(salesforce: SalesforceServer,
                                                   world: World) -> None:
    answer = _token(salesforce, grant_type="client_credentials",
                    client_id="sandbox-client-id", client_secret="sandbox-client-secret")
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "signature", "scope", "instance_url", "id",
                         "token_type", "issued_at"}
    assert body["instance_url"] == salesforce.url and body["token_type"] == "Bearer"
    assert body["access_token"].startswith(world.org_id[:15] + "!")


@pytest.mark.parametrize("form, error", [
    ({"grant_type": "client_credentials", "client_id": "sandbox-client-id",
      "client_secret": "wrong"}, "invalid_client"),
    ({"grant_type": "password", "username": "u", "password": "p"}, "unsupported_grant_type"),
])
def test_refused_grants(salesforce: SalesforceServer, form: dict[str, str], error: str) -> None:
    answer = _token(salesforce, **form)
    assert answer.status_code == 400
    assert answer.json()["error"] == error and answer.json()["error_description"]


def test_jwt_bearer(salesforce_factory: Callable[..., SalesforceServer],
                    keys: tuple[bytes, str]) -> None:
    private, public = keys
    handle = salesforce_factory(jwt_public_key=public)
    for audience in ("https://login.salesforce.com", "https://test.salesforce.com", handle.url):
        answer = _token(handle, grant_type=JWT_GRANT, assertion=_assertion(private, aud=audience))
        assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    http = handle.session()
    got = http.get(f"{handle.url}/services/data/v60.0/limits",
                   headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert got.status_code == 200


@pytest.mark.parametrize("claims, error, description", [
    ({"aud": "https://evil.example"}, "invalid_grant", "audience is invalid"),
    ({"exp": int(time.time()) - 600}, "invalid_grant", "expired assertion"),
    ({"exp": None}, "invalid_grant", "invalid assertion"),
    ({"iss": "someone-else"}, "invalid_client_id", "client identifier invalid"),
    ({"sub": "intruder@example.com"}, "invalid_grant", "user hasn't approved this consumer"),
])
def test_jwt_bearer_refusals(salesforce_factory: Callable[..., SalesforceServer],
                             keys: tuple[bytes, str], claims: dict[str, object], error: str,
                             description: str) -> None:
    private, public = keys
    handle = salesforce_factory(jwt_public_key=public)
    answer = _token(handle, grant_type=JWT_GRANT, assertion=_assertion(private, **claims))
    assert answer.status_code == 400
    assert answer.json() == {"error": error, "error_description": description}


def test_jwt_signed_by_another_key_is_refused(salesforce_factory: Callable[..., SalesforceServer],
                                              keys: tuple[bytes, str]) -> None:
    _, public = keys
    other_private, _ = rsa_key_pair()
    handle = salesforce_factory(jwt_public_key=public)
    answer = _token(handle, grant_type=JWT_GRANT, assertion=_assertion(other_private))
    assert answer.status_code == 400
    assert answer.json()["error_description"] == "invalid assertion"


INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


@pytest.mark.parametrize("authorization", [None, "Bearer nonsense", "Basic abc"])
def test_missing_or_bad_token_is_401(salesforce: SalesforceServer, world: World,
                                     authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = salesforce.session().get(
        f"{salesforce.url}/services/data/v60.0/sobjects/Account/{world.of('Account')[0]['Id']}",
        headers=headers, timeout=5)
    assert answer.status_code == 401
    assert answer.json() == INVALID_SESSION


def test_tokens_expire(salesforce_factory: Callable[..., SalesforceServer], world: World) -> None:
    handle = salesforce_factory(token_lifetime_s=0.3)
    http = handle.session()
    http.headers["Authorization"] = f"Bearer {client_credentials(handle)}"
    url = f"{handle.url}/services/data/v60.0/sobjects/Account/{world.of('Account')[0]['Id']}"
    assert http.get(url, timeout=5).status_code == 200
    time.sleep(0.4)
    answer = http.get(url, timeout=5)
    assert answer.status_code == 401 and answer.json() == INVALID_SESSION


def test_limit_info_and_allocation(salesforce_factory: Callable[..., SalesforceServer],
                                   world: World) -> None:
    handle = salesforce_factory(daily_api_requests=3)
    http = handle.session()
    http.headers["Authorization"] = f"Bearer {client_credentials(handle)}"
    url = f"{handle.url}/services/data/v60.0/sobjects/Account/{world.of('Account')[0]['Id']}"
    seen = [http.get(url, timeout=5) for _ in range(4)]
    assert [a.status_code for a in seen] == [200, 200, 200, 403]
    assert [a.headers["Sforce-Limit-Info"] for a in seen] == [
        "api-usage=1/3", "api-usage=2/3", "api-usage=3/3", "api-usage=3/3"]
    assert seen[-1].json() == [{"message": "TotalRequests Limit exceeded.",
                                "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    stats = http.get(f"{handle.url}/_sandbox/stats", timeout=5).json()
    assert stats["api"]["used"] == 3 and stats["api"]["refused"] == 1
    assert stats["api"]["calls"] == [{"method": "GET", "resource": "Account", "count": 4}]


def test_api_day_is_scaled(salesforce_factory: Callable[..., SalesforceServer],
                           world: World) -> None:
    handle = salesforce_factory(daily_api_requests=1, time_scale=86_400 / 0.3)
    http = handle.session()
    http.headers["Authorization"] = f"Bearer {client_credentials(handle)}"
    url = f"{handle.url}/services/data/v60.0/limits"
    assert [http.get(url, timeout=5).status_code for _ in range(2)] == [200, 403]
    time.sleep(0.35)
    assert http.get(url, timeout=5).status_code == 200
