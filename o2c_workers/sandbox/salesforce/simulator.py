"""The simulated org: store, OAuth, API limits, outbound messaging, and its WSGI entry point."""

from __future__ import annotations

import re
import secrets
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from o2c_workers import sfid
from o2c_workers.sandbox.http import RunningServer, serve
from o2c_workers.sandbox.salesforce import control
from o2c_workers.sandbox.salesforce.auth import Authority, OAuthError
from o2c_workers.sandbox.salesforce.config import SalesforceConfig
from o2c_workers.sandbox.salesforce.faults import ApiFaults
from o2c_workers.sandbox.salesforce.limits import ApiLimits
from o2c_workers.sandbox.salesforce.outbound import Definition, Envelope, OutboundSender
from o2c_workers.sandbox.salesforce.rest import DataApi
from o2c_workers.sandbox.salesforce.soap import Notification, snapshot
from o2c_workers.sandbox.salesforce.store import SObjectError, Store, not_found
from o2c_workers.sandbox.salesforce.tls import make_certificates
from o2c_workers.sandbox.salesforce.wsgi import Request, Response, StartResponse
from o2c_workers.sandbox.world import Record, World

_DATA = re.compile(r"^/services/data/v(?P<version>\d+\.\d)(?:/(?P<rest>.*))?$")
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
WON = "Closed Won"
#: Fields whose change on a won opportunity sends its outbound message again (what it was
#: won with); the write-back fields are not among them, so a write-back never loops.
WON_CONTENT = ("AccountId", "Amount", "CloseDate", "CurrencyIsoCode", "Pricebook2Id",
               "TotalOpportunityQuantity")


class SalesforceSimulator:
    """One org seeded from a ``World``; a WSGI app. Call ``bind`` with the URL it is served at."""

    def __init__(self, world: World, config: SalesforceConfig | None = None) -> None:
        self.world, self.config = world, config or SalesforceConfig()
        self.org_id = sfid.to18(self.config.org_id) if self.config.org_id else world.org_id
        self.base_url = "https://127.0.0.1"
        self.store = Store(world.records)
        self.limits = ApiLimits(allocation=self.config.daily_api_requests,
                                time_scale=self.config.time_scale)
        self.authority = Authority(self.config, org_id=self.org_id, user_id=world.user_id)
        self.definitions = self._definitions()
        self.envelope = Envelope(org_id=self.org_id, enterprise_url="", partner_url="")
        if self.config.send_session_id:
            self.envelope.session = lambda: self.authority.session_for(self.base_url)
        self.sender = OutboundSender(self.config, self.envelope, self.definitions)
        self.api = DataApi(self.store, limits=self.limits, config=self.config)
        self.faults = ApiFaults()
        self._note_lock = threading.Lock()
        self._note_counter = secrets.randbelow(62**8)
        self.store.listeners.append(self._on_save)
        self.bind(self.base_url)

    def _definitions(self) -> dict[str, Definition]:
        out = {}
        for n, (sobject, fields) in enumerate(sorted(self.config.outbound_fields.items())):
            self.store.check_fields(sobject, fields)
            action_id = sfid.to18(f"04k{self.org_id[3:9]}{n + 1:06d}")
            out[sobject] = Definition(sobject, action_id, tuple(fields))
        return out

    def bind(self, base_url: str) -> None:
        """Tell the org the URL it is reached at (token answers and outbound messages name it)."""
        self.base_url = base_url.rstrip("/")
        version = self.config.api_version
        org15 = sfid.to15(self.org_id)
        self.envelope.enterprise_url = f"{self.base_url}/services/Soap/c/{version}/{org15}"
        self.envelope.partner_url = f"{self.base_url}/services/Soap/u/{version}/{org15}"

    def _next_notification_id(self) -> str:
        with self._note_lock:
            self._note_counter += 1
            n, body = self._note_counter, ""
        for _ in range(9):
            n, rem = divmod(n, 62)
            body = _DIGITS[rem] + body
        return sfid.to18(f"04l{self.org_id[3:6]}{body}")

    def _on_save(self, sobject: str, before: Record | None, after: Record) -> None:
        definition = self.definitions.get(sobject)
        if definition is None:
            return
        if sobject == "Opportunity":
            fire = opportunity_rule(before, after)
        else:
            watched = [f for f in definition.fields if f != "LastModifiedDate"]
            fire = before is None or any(before.get(f) != after.get(f) for f in watched)
        if fire:
            self.sender.enqueue(Notification(self._next_notification_id(), sobject,
                                             snapshot(after, definition.fields)))

    def win(self, ids: Iterable[str] | None) -> dict[str, list[str]]:
        """Set opportunities Closed Won (all of them when ``ids`` is None)."""
        chosen = ([o["Id"] for o in self.store.all("Opportunity")] if ids is None
                  else [self.store.get("Opportunity", i)["Id"] for i in ids])
        won, already = [], []
        for opp_id in chosen:
            with self.store.lock:
                if self.store.get("Opportunity", opp_id)["StageName"] == WON:
                    already.append(opp_id)
                    continue
                self.store.save("Opportunity", opp_id, {"StageName": WON})
            won.append(opp_id)
        return {"won": won, "already_won": already}

    def stats(self) -> dict[str, Any]:
        return {"api": self.limits.snapshot(), "outbound": self.sender.snapshot(),
                "tokens_issued": self.authority.issued,
                "records": {t: len(self.store.all(t)) for t in self.store.types()}}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request.from_environ(environ)
        path = request.path
        try:
            if path == "/services/oauth2/token":
                response = self._token(request)
            elif path == "/services/data" or path.startswith("/services/data/"):
                response = self._data(request)
            elif path.startswith("/_sandbox/"):
                response = control.handle(self, request, path.split("/")[2:])
            else:
                raise not_found()
        except SObjectError as exc:
            response = error_response(exc)
        return response.finish(start_response)

    def _token(self, request: Request) -> Response:
        if request.method != "POST":
            raise not_found()
        try:
            return Response.json(self.authority.token(request.form(), base_url=self.base_url))
        except OAuthError as exc:
            return Response.json(exc.as_json(), exc.status)

    def _data(self, request: Request) -> Response:
        match = _DATA.match(request.path.rstrip("/"))
        try:
            if match is None:
                if request.path.rstrip("/") != "/services/data":
                    raise not_found()
                response = Response.json([{"label": "Spring '24", "version": "60.0",
                                           "url": "/services/data/v60.0"}])
            else:
                self.authority.check(request.headers.get("authorization"))
                parts = [p for p in (match["rest"] or "").split("/") if p]
                resource = self.api.resource(parts)
                self.limits.spend(request.method, resource)
                self.faults.check(resource)
                response = self.api.handle(request, match["version"], parts)
        except SObjectError as exc:
            response = error_response(exc)
        response.headers.append(("Sforce-Limit-Info", self.limits.header()))
        return response


def opportunity_rule(before: Record | None, after: Record) -> bool:
    """The org's rule for the Opportunity outbound message: a new won opportunity, every
    change of stage, and every change of what a won one was won with (README, "Pointing at
    a real org")."""
    stage = after.get("StageName")
    if before is None:
        return stage == WON
    if before.get("StageName") != stage:
        return True
    return stage == WON and any(before.get(f) != after.get(f) for f in WON_CONTENT)


def error_response(exc: SObjectError) -> Response:
    error: dict[str, Any] = {"message": exc.message, "errorCode": exc.code}
    if exc.fields:
        error["fields"] = exc.fields
    return Response.json([error], exc.status)


@dataclass
class SalesforceServer:
    """A running simulator: ``url`` to call, ``ca_file`` to trust (None over plain HTTP)."""

    simulator: SalesforceSimulator
    server: RunningServer
    ca_file: str | None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def session(self) -> requests.Session:
        """A requests session that trusts the simulator's certificate.

        ``trust_env`` is off because requests lets ``REQUESTS_CA_BUNDLE`` or
        ``CURL_CA_BUNDLE`` in the environment override ``Session.verify``.
        """
        http = requests.Session()
        http.trust_env = False
        http.verify = self.ca_file if self.ca_file else True
        return http

    def stop(self) -> None:
        self.simulator.sender.stop()
        self.server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


def serve_salesforce(world: World, config: SalesforceConfig | None = None, *,
                     host: str = "127.0.0.1", port: int = 8200) -> SalesforceServer:
    """Start the simulator on ``host:port`` (0 for a free port) and its outbound sender."""
    config = config or SalesforceConfig()
    simulator = SalesforceSimulator(world, config)
    tmp, ssl_context, ca_file = None, None, None
    if config.tls:
        if config.state_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="o2c-sf-tls-")
        folder = Path(tmp.name) if tmp is not None else Path(str(config.state_dir))
        files = make_certificates(folder, hosts=_hosts(host))
        ssl_context, ca_file = files.server_context(), files.ca_file
    running = serve(simulator, host=host, port=port, ssl_context=ssl_context, name="salesforce")
    simulator.bind(running.url)
    simulator.sender.start()
    return SalesforceServer(simulator, running, ca_file, tmp)


def _hosts(host: str) -> tuple[str, ...]:
    hosts = ["127.0.0.1", "localhost"]
    if host not in hosts and host not in ("0.0.0.0", "::"):  # noqa: S104 - a name to certify
        hosts.insert(0, host)
    return tuple(hosts)
