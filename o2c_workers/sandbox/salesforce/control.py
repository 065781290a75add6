"""``/_sandbox/…``: what tests and the demo use to drive and inspect the simulated org.

These routes need no token and cost no API calls:

- ``GET  /_sandbox/stats``: API calls by method and type, limit usage, delivery counts
- ``GET  /_sandbox/deliveries``: every delivery attempt, pending and dropped counts
- ``GET  /_sandbox/records/{Type}``: every record of a type
- ``GET  /_sandbox/world``: org id and the opportunities built to fail, with the reason
- ``POST /_sandbox/opportunities/{id}/win``: set one opportunity Closed Won
- ``POST /_sandbox/opportunities/win``: ``{"ids": [...]}`` or ``{"ids": "all"}`` (or the bare
  list or ``"all"``)
- ``POST /_sandbox/opportunities/{id}/lose``: set it Closed Lost
- ``POST /_sandbox/opportunities/{id}/reopen``: back to an open stage, ``{"stage": ...}``
  (default ``Negotiation/Review``)
- ``GET  /_sandbox/opportunities/{id}/lines``: its product lines, in order
- ``POST /_sandbox/opportunities/{id}/lines``: edit lines in one save, ``[{"line": 1,
  "Quantity": 25, "Discount": 24}, ...]`` (``line``: position from 1, or the line's Id;
  fields ``Quantity``, ``Discount``, ``UnitPrice``); ``TotalPrice``, the opportunity's
  ``Amount`` and ``TotalOpportunityQuantity`` follow, as in Salesforce

Each of these is a user's save: the org's outbound rule sends the opportunity's message on
a change of stage, and on a change of what a won opportunity was won with.
- ``POST /_sandbox/accounts/{id}/change``: apply ``{field: value}`` as a user edit would
- ``POST /_sandbox/outbound``: ``{"url": ...}`` to point the sender somewhere else
- ``POST /_sandbox/limits``: ``{"allocation": n}`` resets the usage, optionally to a new size
- ``POST /_sandbox/records/{Type}/{id}/delete``: a user deletes the record (recycle bin:
  reads answer 404 and writes ``ENTITY_IS_DELETED``, one by one or in a collection)
- ``POST /_sandbox/records/{Type}/{id}/rule``: ``{"message": ...}`` a validation rule that
  refuses every save of that record (``FIELD_CUSTOM_VALIDATION_EXCEPTION``); ``{"message":
  null}`` removes it
- ``POST /_sandbox/faults``: ``{"resource": "composite/sobjects", "status": 503,
  "errorCode": "SERVER_UNAVAILABLE", "count": 2}`` answers the next ``count`` REST calls to
  that resource (as ``stats`` names it) with that error, each still counted as a call;
  ``{"clear": true}`` drops every fault
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from o2c_workers.sandbox.salesforce import opportunities
from o2c_workers.sandbox.salesforce.config import SalesforceConfig
from o2c_workers.sandbox.salesforce.faults import ApiFaults
from o2c_workers.sandbox.salesforce.limits import ApiLimits
from o2c_workers.sandbox.salesforce.outbound import OutboundSender
from o2c_workers.sandbox.salesforce.rest import DataApi
from o2c_workers.sandbox.salesforce.store import SObjectError, Store, not_found
from o2c_workers.sandbox.salesforce.wsgi import BadRequest, Request, Response
from o2c_workers.sandbox.world import World


class Org(Protocol):
    """What the control routes drive and read of a simulated org."""

    org_id: str
    world: World
    store: Store
    config: SalesforceConfig
    api: DataApi
    sender: OutboundSender
    limits: ApiLimits
    faults: ApiFaults

    def stats(self) -> dict[str, Any]: ...

    def win(self, ids: Iterable[str] | None) -> dict[str, list[str]]: ...


def _body(request: Request) -> Any:
    try:
        return request.json()
    except BadRequest as exc:
        raise SObjectError(400, "JSON_PARSER_ERROR", str(exc)) from exc


def handle(sim: Org, request: Request, parts: list[str]) -> Response:
    method = request.method
    if method == "GET":
        if parts == ["stats"]:
            return Response.json(sim.stats())
        if parts == ["deliveries"]:
            return Response.json(sim.sender.deliveries())
        if parts == ["world"]:
            return Response.json({"org_id": sim.org_id,
                                  "expected_failures": sim.world.expected_failures})
        if len(parts) == 3 and parts[0] == "opportunities" and parts[2] == "lines":
            return Response.json(opportunities.lines_of(
                sim.store, sim.store.get("Opportunity", parts[1])["Id"]))
        if len(parts) == 2 and parts[0] == "records" and sim.store.has_type(parts[1]):
            version = sim.config.api_version
            return Response.json([sim.api.render(parts[1], record, version)
                                  for record in sim.store.all(parts[1])])
    if method == "POST":
        if len(parts) == 3 and parts[0] == "opportunities" and parts[2] == "win":
            return Response.json(sim.win([parts[1]]))
        if parts == ["opportunities", "win"]:
            return Response.json(sim.win(_ids(_body(request))))
        if len(parts) == 3 and parts[0] == "opportunities":
            return _opportunity(sim.store, request, parts[1], parts[2])
        if len(parts) == 3 and parts[0] == "accounts" and parts[2] == "change":
            body = _body(request)
            if not isinstance(body, dict):
                raise SObjectError(400, "JSON_PARSER_ERROR", "a JSON object of fields")
            saved = sim.store.save("Account", sim.store.get("Account", parts[1])["Id"], body)
            return Response.json({"id": saved["Id"]})
        if parts == ["outbound"]:
            body = _body(request) or {}
            sim.sender.set_endpoint(body.get("url"))
            return Response.json(sim.sender.snapshot())
        if parts == ["limits"]:
            body = _body(request) or {}
            sim.limits.reset(allocation=body.get("allocation"))
            return Response.json(sim.limits.snapshot())
        if parts == ["faults"]:
            return Response.json(sim.faults.configure(_body(request)))
        if len(parts) == 4 and parts[0] == "records" and sim.store.has_type(parts[1]):
            return _record(sim.store, request, parts[1], parts[2], parts[3])
    raise not_found()


def _record(store: Store, request: Request, sobject: str, record_id: str,
            action: str) -> Response:
    """``delete`` or ``rule`` on one record, as a user or an admin does it."""
    record = store.get(sobject, record_id)
    if action == "delete":
        store.delete(sobject, record["Id"])
        return Response.json({"id": record["Id"], "deleted": True})
    if action == "rule":
        body = _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("message"), str | None):
            raise SObjectError(400, "JSON_PARSER_ERROR", 'send {"message": "..."} or null')
        key = (sobject, record["Id"][:15])
        if body.get("message") is None:
            store.rules.pop(key, None)
        else:
            store.rules[key] = str(body["message"])
        return Response.json({"id": record["Id"], "rule": body.get("message")})
    raise not_found()


def _opportunity(store: Store, request: Request, opportunity_id: str,
                 action: str) -> Response:
    """``lose``, ``reopen`` or ``lines`` on one opportunity."""
    if action == "lose":
        return Response.json(opportunities.set_stage(store, opportunity_id, opportunities.LOST))
    if action == "reopen":
        body = _body(request) or {}
        stage = body.get("stage") if isinstance(body, dict) else None
        return Response.json(opportunities.reopen(store, opportunity_id, stage))
    if action == "lines":
        return Response.json(opportunities.edit_lines(store, opportunity_id, _body(request)))
    raise not_found()


def _ids(body: Any) -> list[str] | None:
    """The opportunity ids a win request names; None means all of them."""
    if isinstance(body, dict):
        body = body.get("ids")
    if body == "all":
        return None
    if isinstance(body, list) and all(isinstance(i, str) for i in body):
        return body
    raise SObjectError(400, "JSON_PARSER_ERROR", 'send {"ids": [...]} or {"ids": "all"}')
