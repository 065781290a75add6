"""The REST data API under ``/services/data/vNN.0/``: sobjects, related lists, collections,
and SOQL queries answered page by page (``nextRecordsUrl``)."""

from __future__ import annotations

from typing import Any

from o2c_workers.sandbox.salesforce.config import SalesforceConfig
from o2c_workers.sandbox.salesforce.limits import ApiLimits
from o2c_workers.sandbox.salesforce.query import QueryApi
from o2c_workers.sandbox.salesforce.relationships import CHILD_RELATIONSHIPS, PARENT_RELATIONSHIPS
from o2c_workers.sandbox.salesforce.store import READ_ONLY, SObjectError, Store, not_found
from o2c_workers.sandbox.salesforce.wsgi import BadRequest, Request, Response
from o2c_workers.sandbox.world import Record

#: Records one sObject Collections request may carry.
COLLECTION_LIMIT = 200
_ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "fields": [],
                "message": "Record rolled back because not all records were valid and the "
                           "request was using AllOrNone header"}


class DataApi:
    """Answers the data API for one simulator; ``version`` is the path's ``NN.0``."""

    def __init__(self, store: Store, *, limits: ApiLimits, config: SalesforceConfig) -> None:
        self.store = store
        self.limits = limits
        self.config = config
        self.queries = QueryApi(store, config)

    def resource(self, parts: list[str]) -> str:
        """The name a call is counted under: the object type, or the resource."""
        if parts[:1] == ["sobjects"] and len(parts) > 1:
            return parts[1]
        if parts[:1] == ["query"]:
            return "query"
        return "/".join(parts[:2]) or "versions"

    def handle(self, request: Request, version: str, parts: list[str]) -> Response:
        method = request.method
        if parts[:1] == ["sobjects"]:
            return self._sobjects(request, version, parts[1:])
        if parts == ["composite", "sobjects"] and method in ("PATCH", "POST"):
            return self._collection(request, version)
        if parts == ["query"] and method == "GET":
            return self.queries.query(request, version)
        if len(parts) == 2 and parts[0] == "query" and method == "GET":
            return self.queries.more(version, parts[1])
        if parts == ["limits"] and method == "GET":
            allocation, used = self.limits.allocation, self.limits.used
            return Response.json({"DailyApiRequests": {"Max": allocation,
                                                       "Remaining": allocation - used}})
        raise not_found()

    def _type(self, sobject: str) -> str:
        if not self.store.has_type(sobject):
            raise SObjectError(404, "NOT_FOUND", "The requested resource does not exist")
        return sobject

    def _sobjects(self, request: Request, version: str, rest: list[str]) -> Response:
        method = request.method
        if not rest:
            types = [{"name": t, "urls": {"sobject": f"/services/data/v{version}/sobjects/{t}"}}
                     for t in self.store.types()]
            return Response.json({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": types})
        sobject = self._type(rest[0])
        if len(rest) == 1 and method == "POST":
            saved = self.store.save(sobject, None, self._body(request))
            return Response.json({"id": saved["Id"], "success": True, "errors": []}, 201)
        if len(rest) == 2 and rest[1] == "describe" and method == "GET":
            return Response.json(self._describe(sobject, version))
        if len(rest) == 2 and method == "GET":
            fields = self._fields_arg(request, sobject)
            return Response.json(self.render(sobject, self.store.get(sobject, rest[1]),
                                              version, fields))
        if len(rest) == 2 and method == "DELETE":
            self.store.delete(sobject, rest[1])
            return Response.empty(204)
        if len(rest) == 2 and method == "PATCH":
            body = self._body(request)
            if "Id" in body and str(body["Id"])[:15] == rest[1][:15]:
                body.pop("Id")
            self.store.save(sobject, self.store.get(sobject, rest[1])["Id"], body)
            return Response.empty(204)
        if len(rest) == 3 and rest[1] in self.store.fields(sobject):
            return self._external(request, version, sobject, rest[1], rest[2])
        if len(rest) == 3 and method == "GET":
            return self._related(request, version, sobject, rest[1], rest[2])
        raise not_found()

    def _body(self, request: Request) -> Record:
        try:
            body = request.json()
        except BadRequest as exc:
            raise SObjectError(400, "JSON_PARSER_ERROR", str(exc)) from exc
        if not isinstance(body, dict):
            raise SObjectError(400, "JSON_PARSER_ERROR", "the request body must be a JSON object")
        body.pop("attributes", None)
        return body

    def _fields_arg(self, request: Request, sobject: str) -> list[str] | None:
        raw = request.arg("fields")
        if not raw:
            return None
        names = [name.strip() for name in raw.split(",") if name.strip()]
        self.store.check_fields(sobject, names)
        return names

    def render(self, sobject: str, record: Record, version: str,
               fields: list[str] | None = None) -> dict[str, Any]:
        """A record as the REST API shows it, ``attributes`` first."""
        out: dict[str, Any] = {"attributes": {
            "type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{record['Id']}"}}
        for name in fields or list(record):
            out[name] = record.get(name)
        return out

    def _external(self, request: Request, version: str, sobject: str, field: str,
                  value: str) -> Response:
        if field not in self.config.external_ids.get(sobject, ("Id",)):
            raise SObjectError(404, "NOT_FOUND", "Provided external ID field does not exist "
                                                 f"or is not accessible: {field}")
        with self.store.lock:
            matches = self.store.where(sobject, field, value) if value else []
            if len(matches) > 1:
                urls = [f"/services/data/v{version}/sobjects/{sobject}/{m}" for m in matches]
                return Response.json(urls, 300)
            if request.method == "GET":
                if not matches:
                    raise not_found()
                return Response.json(self.render(sobject, self.store.get(sobject, matches[0]),
                                                 version, self._fields_arg(request, sobject)))
            if request.method != "PATCH":
                raise not_found()
            body = self._body(request)
            if matches:
                saved = self.store.save(sobject, matches[0], body)
                return Response.json({"id": saved["Id"], "success": True, "errors": [],
                                      "created": False}, 200)
            if field == "Id" and value:
                raise not_found()
            if field != "Id":
                body[field] = value
            saved = self.store.save(sobject, None, body)
            return Response.json({"id": saved["Id"], "success": True, "errors": [],
                                  "created": True}, 201)

    def _related(self, request: Request, version: str, sobject: str, record_id: str,
                 relationship: str) -> Response:
        parent = self.store.get(sobject, record_id)
        if (sobject, relationship) in CHILD_RELATIONSHIPS:
            child, lookup = CHILD_RELATIONSHIPS[(sobject, relationship)]
            fields = self._fields_arg(request, child)
            records = [self.render(child, self.store.get(child, cid), version, fields)
                       for cid in self.store.where(child, lookup, parent["Id"])]
            return Response.json({"totalSize": len(records), "done": True, "records": records})
        if (sobject, relationship) in PARENT_RELATIONSHIPS:
            target, lookup = PARENT_RELATIONSHIPS[(sobject, relationship)]
            if not parent.get(lookup):
                raise not_found()
            return Response.json(self.render(target, self.store.get(target, parent[lookup]),
                                             version, self._fields_arg(request, target)))
        raise not_found()

    def _collection(self, request: Request, version: str) -> Response:
        body = self._body(request)
        records = body.get("records")
        if not isinstance(records, list) or not records:
            raise SObjectError(400, "JSON_PARSER_ERROR", "records: a list of sObjects is required")
        if len(records) > COLLECTION_LIMIT:
            raise SObjectError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit "
                               f"more than {COLLECTION_LIMIT} records into this call")
        creating = request.method == "POST"
        with self.store.lock:
            prepared: list[tuple[str, Record | None, Record] | SObjectError] = []
            for item in records:
                try:
                    prepared.append(self._prepare_item(item, creating))
                except SObjectError as exc:
                    prepared.append(exc)
            failed = any(isinstance(p, SObjectError) for p in prepared)
            results = []
            for item, outcome in zip(records, prepared, strict=True):
                if isinstance(outcome, SObjectError):
                    error = {"statusCode": outcome.code, "message": outcome.message,
                             "fields": outcome.fields}
                    results.append(self._result(item, False, [error]))
                elif failed and body.get("allOrNone"):
                    results.append(self._result(item, False, [_ROLLED_BACK]))
                else:
                    sobject, before, after = outcome
                    self.store.commit(sobject, before, after)
                    results.append({"id": after["Id"], "success": True, "errors": []})
        return Response.json(results, 200)

    @staticmethod
    def _result(item: Any, success: bool, errors: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"success": success, "errors": errors}
        if isinstance(item, dict) and item.get("id"):
            out = {"id": item["id"], **out}
        return out

    def _prepare_item(self, item: Any, creating: bool) -> tuple[str, Record | None, Record]:
        if not isinstance(item, dict):
            raise SObjectError(400, "JSON_PARSER_ERROR", "each record must be a JSON object")
        values = dict(item)
        attributes = values.pop("attributes", None)
        sobject = attributes.get("type") if isinstance(attributes, dict) else None
        if not sobject or not self.store.has_type(str(sobject)):
            raise SObjectError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        record_id = values.pop("id", None) or values.pop("Id", None)
        if creating:
            if record_id:
                raise SObjectError(400, "INVALID_FIELD", "cannot specify Id in an insert call")
            return (str(sobject), *self.store.prepare(str(sobject), None, values))
        if not record_id:
            raise SObjectError(400, "MISSING_ARGUMENT", "Id not specified in an update call")
        if len(str(record_id)) not in (15, 18):
            raise SObjectError(400, "MALFORMED_ID", f"malformed id {record_id}")
        before, after = self.store.prepare(str(sobject), str(record_id), values)
        return str(sobject), before, after

    def _describe(self, sobject: str, version: str) -> dict[str, Any]:
        external = self.config.external_ids.get(sobject, ())
        fields = [{"name": name, "updateable": name not in READ_ONLY,
                   "externalId": name in external and name != "Id",
                   "custom": name.endswith("__c")}
                  for name in self.store.fields(sobject)]
        return {"name": sobject, "custom": False, "fields": fields,
                "urls": {"sobject": f"/services/data/v{version}/sobjects/{sobject}"}}

