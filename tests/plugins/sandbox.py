"""Fixtures that run the sandbox simulators on free ports.

- ``world``: a small seeded world (10 accounts, 30 opportunities, 2 of each failure).
- ``salesforce`` / ``salesforce_factory``: the Salesforce simulator alone, over HTTPS.
- ``sf_http``: a requests session trusting its certificate, with a client-credentials token.
- ``soap_receiver``: an outbound message endpoint answering a script, then real Acks.
- ``sandbox`` / ``sandbox_factory``: both simulators on one world (needs the ERP simulator).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from o2c_workers.sandbox.erp import ErpConfig, RunningErp, serve_erp
from o2c_workers.sandbox.http import RunningServer, serve
from o2c_workers.sandbox.salesforce import SalesforceConfig, SalesforceServer, serve_salesforce
from o2c_workers.sandbox.world import ErpSeed, World, generate_world

ACK = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
       b'<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
       b"<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>")


@dataclass
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class SoapReceiver:
    """Records every POST; answers ``script`` entries (status, body) first, then real Acks."""

    script: list[tuple[int, bytes]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    server: RunningServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "/outbound"

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        headers["Content-Type"] = environ.get("CONTENT_TYPE", "")
        with self._lock:
            self.received.append(Received(environ["PATH_INFO"], environ.get("QUERY_STRING", ""),
                                          headers, body))
            status, answer = self.script.pop(0) if self.script else (200, ACK)
        start_response(f"{status} X", [("Content-Type", "text/xml; charset=utf-8"),
                                       ("Content-Length", str(len(answer)))])
        return [answer]


@pytest.fixture
def world() -> World:
    return generate_world(seed=11, accounts=10, opportunities=30)


@pytest.fixture
def salesforce_factory(world: World) -> Iterator[Callable[..., SalesforceServer]]:
    """Start Salesforce simulators with config overrides; all stop after the test."""
    started: list[SalesforceServer] = []

    def start(config: SalesforceConfig | None = None, *, on: World | None = None,
              **overrides: Any) -> SalesforceServer:
        config = config or SalesforceConfig(**overrides)
        handle = serve_salesforce(on or world, config, port=0)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
def erp_factory() -> Iterator[Callable[..., RunningErp]]:
    """Start ERP simulators on a seed with a config (free ports); all stop after the test.
    Unless told otherwise their invoices and payments wait a minute, so that a test sees an
    order before what follows it."""
    started: list[RunningErp] = []

    def start(seed: ErpSeed, **config: Any) -> RunningErp:
        config.setdefault("invoice_delay_s", 60.0)
        config.setdefault("payment_delay_s", 60.0)
        erp = serve_erp(seed, ErpConfig(**config), port=0)
        started.append(erp)
        return erp

    yield start
    for erp in started:
        erp.stop()


@pytest.fixture
def salesforce(salesforce_factory: Callable[..., SalesforceServer]) -> SalesforceServer:
    return salesforce_factory()


def client_credentials(handle: SalesforceServer) -> str:
    config = handle.simulator.config
    answer = handle.session().post(f"{handle.url}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": config.client_id,
        "client_secret": config.client_secret}, timeout=5)
    answer.raise_for_status()
    return str(answer.json()["access_token"])


@pytest.fixture
def sf_http(salesforce: SalesforceServer) -> Iterator[requests.Session]:
    http = salesforce.session()
    http.headers["Authorization"] = f"Bearer {client_credentials(salesforce)}"
    yield http
    http.close()


@pytest.fixture
def soap_receiver() -> Iterator[SoapReceiver]:
    receiver = SoapReceiver()
    receiver.server = serve(receiver, port=0, name="soap-receiver")
    yield receiver
    receiver.server.stop()


@pytest.fixture
def sandbox_factory(world: World) -> Iterator[Callable[..., Any]]:
    """Start both simulators (free ports, HTTPS Salesforce) with optional configs."""
    from o2c_workers.sandbox import Sandbox, start_sandbox

    started: list[Sandbox] = []

    def start(**options: Any) -> Sandbox:
        options.setdefault("world", world)
        box = start_sandbox(erp_port=0, sf_port=0, **options)
        started.append(box)
        return box

    yield start
    for box in started:
        box.stop()


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., Any]) -> Any:
    return sandbox_factory()


def rsa_key_pair() -> tuple[bytes, str]:
    """A fresh RSA key pair: the private key (PEM bytes) and the public key (PEM text)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, str]:
    """A key pair for the JWT-bearer grant (the simulator checks the public key)."""
    return rsa_key_pair()
