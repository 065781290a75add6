"""The HTTP session the Salesforce client speaks through: explicit timeouts, explicit trust.

requests lets ``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE`` from the environment override
``Session.verify`` (and reads proxies and ``.netrc`` too), so the session is built with
``trust_env = False`` and verifies against ``salesforce_ca_bundle`` when one is given, else
the system's trust store. Every request gets a timeout even when its caller names none
(simple-salesforce never does): a mounted adapter fills in the default.
"""

from __future__ import annotations

import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from config.settings import Settings
from o2c_workers import metrics

#: Seconds to wait for a TCP and TLS connection at most; reads wait ``salesforce_timeout_s``.
CONNECT_TIMEOUT_S = 3.05


class TimeoutAdapter(HTTPAdapter):
    """An adapter that applies ``timeout`` to every request sent without one, and counts
    every call (status and latency) for the metrics."""

    def __init__(self, timeout: float | tuple[float, float], **kwargs: Any) -> None:
        self.timeout = timeout
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        method = request.method or "GET"
        started = time.monotonic()
        try:
            response = super().send(request, *args, **kwargs)
        except requests.RequestException:
            metrics.salesforce_call(method, None, time.monotonic() - started)
            raise
        metrics.salesforce_call(method, response.status_code, time.monotonic() - started)
        return response


def default_timeout(settings: Settings) -> tuple[float, float]:
    """(connect, read) seconds for Salesforce calls."""
    read_s = settings.salesforce_timeout_s
    return min(CONNECT_TIMEOUT_S, read_s), read_s


def apply_timeout(session: requests.Session, timeout: float | tuple[float, float]) -> None:
    """Mount a timeout adapter on ``session`` for both schemes."""
    for prefix in ("https://", "http://"):
        session.mount(prefix, TimeoutAdapter(timeout))


def new_session(settings: Settings) -> requests.Session:
    """A session trusting ``salesforce_ca_bundle`` (else the system CAs), env ignored."""
    session = requests.Session()
    session.trust_env = False
    session.verify = settings.salesforce_ca_bundle or True
    apply_timeout(session, default_timeout(settings))
    return session
