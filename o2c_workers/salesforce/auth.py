"""Server-to-server OAuth 2.0 for Salesforce: client credentials or JWT bearer, cached.

The grant follows the settings: ``salesforce_client_secret`` set means the client-credentials
grant; otherwise ``salesforce_username`` and ``salesforce_private_key_file`` sign an RS256
JWT-bearer assertion. Salesforce says nothing of a token's lifetime, so a token is kept
until an API call answers 401; the client then ``invalidate``s it and asks again, once.
Tokens, client secrets, assertions and keys are never logged nor put in an error message.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import requests

from config.settings import ConfigError, Settings
from o2c_workers.errors import AuthError, O2CError, Throttled, Transient
from o2c_workers.salesforce import errors

log = logging.getLogger("o2c.salesforce.auth")

CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Seconds a JWT-bearer assertion is valid for (Salesforce accepts at most 3 minutes).
ASSERTION_LIFETIME_S = 120
TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 - a URL path, not a secret


@dataclass(frozen=True)
class Token:
    """An access token and the instance URL it is good for."""

    access_token: str = field(repr=False)
    instance_url: str


def _https(url: str, name: str) -> str:
    if not url.startswith("https://"):
        raise ConfigError(f"O2C_{name.upper()} must be an https:// URL")
    return url.rstrip("/")


class TokenSource:
    """Fetches an access token on first use and keeps it until told it went stale.

    One fetch at a time: threads that find no token wait for the one fetching it.
    """

    def __init__(self, settings: Settings, session: requests.Session) -> None:
        settings.require("salesforce_client_id")
        if settings.salesforce_client_secret is None:
            settings.require("salesforce_username", "salesforce_private_key_file")
        self._settings = settings
        self._session = session
        self.login_url = _https(settings.salesforce_login_url
                                or settings.salesforce_instance_url,
                                "salesforce_login_url")
        self.grant = CLIENT_CREDENTIALS if settings.salesforce_client_secret else JWT_BEARER
        self._lock = threading.Lock()
        self._token: Token | None = None

    def current(self) -> Token:
        """The cached token, fetched now if there is none."""
        with self._lock:
            if self._token is None:
                self._token = self._fetch()
            return self._token

    def invalidate(self, stale: Token) -> None:
        """Forget ``stale`` (unless another thread already replaced it)."""
        with self._lock:
            if self._token is stale:
                self._token = None

    def _form(self) -> dict[str, str]:
        settings = self._settings
        client_id = str(settings.salesforce_client_id)
        if settings.salesforce_client_secret is not None:
            return {"grant_type": CLIENT_CREDENTIALS, "client_id": client_id,
                    "client_secret": settings.salesforce_client_secret.get_secret_value()}
        return {"grant_type": JWT_BEARER, "assertion": self._assertion(client_id)}

    def _assertion(self, client_id: str) -> str:
        path = Path(str(self._settings.salesforce_private_key_file))
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise AuthError(f"cannot read the Salesforce private key file {path}: "
                            f"{exc.strerror}", reason="private_key_unreadable") from None
        claims = {"iss": client_id, "sub": self._settings.salesforce_username,
                  "aud": self.login_url, "exp": int(time.time()) + ASSERTION_LIFETIME_S}
        try:
            return jwt.encode(claims, key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError):
            # The underlying message may quote the key material: say only what is wrong.
            raise AuthError(f"the Salesforce private key in {path} is not a usable RSA key",
                            reason="private_key_invalid") from None

    def _fetch(self) -> Token:
        what = f"issue an access token ({self.grant} grant)"
        try:
            answer = self._session.post(self.login_url + TOKEN_PATH, data=self._form(),
                                        headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise errors.from_exception(exc, what=what) from None
        if answer.status_code != 200:
            raise _refusal(answer, what)
        token = _token(answer, what, fallback_url=self._settings.salesforce_instance_url)
        log.info("salesforce access token obtained",
                 extra={"grant": self.grant, "instance_url": token.instance_url})
        return token


def _json(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _refusal(answer: requests.Response, what: str) -> O2CError:
    """The error for a token answer other than 200: OAuth's ``{"error", "error_description"}``."""
    body = _json(answer)
    body = body if isinstance(body, dict) else {}
    code = str(body.get("error") or f"HTTP_{answer.status_code}")
    description = str(body.get("error_description") or "").strip()
    message = f"Salesforce refused to {what}: HTTP {answer.status_code} {code}"
    if description:
        message += f" ({description})"
    status = answer.status_code
    if status == 429:
        return Throttled(message, reason=code, status=status,
                         retry_after_s=errors.THROTTLED_RETRY_AFTER_S)
    if 400 <= status < 500:
        return AuthError(message, reason=code, status=status)
    return Transient(message, reason=code, status=status)


def _token(answer: requests.Response, what: str, *, fallback_url: str) -> Token:
    body = _json(answer)
    if not isinstance(body, dict) or not body.get("access_token"):
        raise AuthError(f"Salesforce answered {what} without an access token",
                        reason="no_access_token", status=answer.status_code)
    instance_url = str(body.get("instance_url") or fallback_url).rstrip("/")
    if not instance_url.startswith("https://"):
        raise AuthError(f"Salesforce answered {what} with an instance URL that is not https",
                        reason="insecure_instance_url", status=answer.status_code)
    return Token(str(body["access_token"]), instance_url)
