"""OAuth 2.0 for the simulated org: client credentials and JWT bearer grants, session checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt

from o2c_workers import sfid
from o2c_workers.sandbox.salesforce.config import LOGIN_AUDIENCES, SalesforceConfig
from o2c_workers.sandbox.salesforce.store import SObjectError

CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class OAuthError(Exception):
    """A refused token request, answered as ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def as_json(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def invalid_session() -> SObjectError:
    return SObjectError(401, "INVALID_SESSION_ID", "Session expired or invalid")


@dataclass
class Session:
    username: str
    expires_at: float


class Authority:
    """Issues access tokens and tells whether a presented one is still good."""

    def __init__(self, config: SalesforceConfig, *, org_id: str, user_id: str) -> None:
        self.config, self.org_id, self.user_id = config, org_id, user_id
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.issued = 0

    def token(self, form: dict[str, str], *, base_url: str,
              basic: tuple[str, str] | None = None) -> dict[str, Any]:
        """Answer a ``POST /services/oauth2/token`` form, or raise ``OAuthError``."""
        grant = form.get("grant_type", "")
        if grant == CLIENT_CREDENTIALS:
            client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
            if not (hmac.compare_digest(client_id, self.config.client_id)
                    and hmac.compare_digest(secret, self.config.client_secret)):
                raise OAuthError("invalid_client", "invalid client credentials")
            username = self.config.username
        elif grant == JWT_BEARER:
            username = self._verify_assertion(form.get("assertion", ""), base_url)
        else:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        return self._issue(username, base_url)

    def _verify_assertion(self, assertion: str, base_url: str) -> str:
        if self.config.jwt_public_key is None:
            raise OAuthError("invalid_grant", "JWT bearer flow is not enabled for this app")
        try:
            claims = jwt.decode(
                assertion, self.config.jwt_public_key, algorithms=["RS256"],
                audience=[*LOGIN_AUDIENCES, base_url], issuer=self.config.client_id,
                options={"require": ["exp", "iss", "sub", "aud"]}, leeway=5)
        except jwt.ExpiredSignatureError as exc:
            raise OAuthError("invalid_grant", "expired assertion") from exc
        except jwt.InvalidAudienceError as exc:
            raise OAuthError("invalid_grant", "audience is invalid") from exc
        except jwt.InvalidIssuerError as exc:
            raise OAuthError("invalid_client_id", "client identifier invalid") from exc
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_grant", "invalid assertion") from exc
        if claims["sub"] != self.config.username:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        return str(claims["sub"])

    def _issue(self, username: str, base_url: str) -> dict[str, Any]:
        access_token = f"{sfid.to15(self.org_id)}!{secrets.token_urlsafe(72)}"
        issued_at = str(int(time.time() * 1000))
        identity = f"{base_url}/id/{self.org_id}/{self.user_id}"
        digest = hmac.new(self.config.client_secret.encode(), (identity + issued_at).encode(),
                          hashlib.sha256).digest()
        with self._lock:
            self._sessions[access_token] = Session(
                username, time.monotonic() + self.config.token_lifetime_s)
            self.issued += 1
        return {
            "access_token": access_token, "signature": base64.b64encode(digest).decode(),
            "scope": "api", "instance_url": base_url, "id": identity,
            "token_type": "Bearer", "issued_at": issued_at,
        }

    def session_for(self, base_url: str) -> str:
        """A fresh access token of the integration user (an outbound message's SessionId)."""
        return str(self._issue(self.config.username, base_url)["access_token"])

    def check(self, authorization: str | None) -> Session:
        """The session an ``Authorization: Bearer …`` header names, or INVALID_SESSION_ID."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token:
            raise invalid_session()
        with self._lock:
            session = self._sessions.get(token.strip())
            if session is None or session.expires_at <= time.monotonic():
                self._sessions.pop(token.strip(), None)
                raise invalid_session()
            return session

    def revoke_all(self) -> None:
        with self._lock:
            self._sessions.clear()
