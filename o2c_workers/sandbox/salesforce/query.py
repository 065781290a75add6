"""``GET /services/data/vNN.0/query?q=...`` and its ``nextRecordsUrl`` pages: SOQL answered
page by page from the org's records, in Salesforce's answer and error shapes.

A record carries ``attributes`` (``type``, ``url``); a relationship field (``Account.Name``)
comes as the parent record nested under the relationship's name, with its own
``attributes``, or ``null`` when the lookup is empty; a subquery comes as a query result
under the child relationship's name (``totalSize``, ``done``, ``records``, and
``nextRecordsUrl`` past ``child_batch_size`` rows), or ``null`` when it found no row.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from typing import Any

from o2c_workers import sfid
from o2c_workers.sandbox.salesforce import soql
from o2c_workers.sandbox.salesforce.config import SalesforceConfig
from o2c_workers.sandbox.salesforce.relationships import CHILD_RELATIONSHIPS, PARENT_RELATIONSHIPS
from o2c_workers.sandbox.salesforce.store import SObjectError, Store
from o2c_workers.sandbox.salesforce.wsgi import Request, Response
from o2c_workers.sandbox.world import Record

#: Open query locators kept (the oldest is forgotten first), and the batch sizes a
#: ``Sforce-Query-Options`` header may ask for.
OPEN_CURSORS = 100
BATCH_SIZES = (200, 2000)
_CUSTOM_HINT = ("If you are attempting to use a custom relationship, be sure to append the "
                "'__r' after the custom relationship name. Please reference your WSDL or the "
                "describe call for the appropriate names.")


class QueryApi:
    """Runs a query on the store and keeps its answer for the pages that follow."""

    def __init__(self, store: Store, config: SalesforceConfig) -> None:
        self.store = store
        self.config = config
        self.cursors = Cursors()

    def query(self, request: Request, version: str) -> Response:
        query = soql.parse(request.arg("q") or "")
        if not self.store.has_type(query.sobject):
            raise SObjectError(400, "INVALID_TYPE",
                               f"sObject type '{query.sobject}' is not supported.")
        self.check(query, query.sobject)
        with self.store.lock:
            rows = self.matching(query, query.sobject,
                                 self.store.all(query.sobject, ids=ids_wanted(query)))
            records = [self.render(query, query.sobject, row, version) for row in rows]
        size = self.batch_size(request)
        locator = self.cursors.open(records, size) if len(records) > size else None
        return Response.json(page(version, records, locator, 0, size))

    def more(self, version: str, ident: str) -> Response:
        """The page ``{locator}-{offset}`` of an open query (or of a subquery's rows)."""
        locator, _, offset = ident.rpartition("-")
        opened = self.cursors.get(locator)
        if opened is None or not offset.isdigit() or int(offset) >= len(opened[0]):
            raise SObjectError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        records, size = opened
        return Response.json(page(version, records, locator, int(offset), size))

    def batch_size(self, request: Request) -> int:
        """``Sforce-Query-Options: batchSize=n`` (200 to 2000), else the org's page size."""
        options = request.headers.get("sforce-query-options") or ""
        for option in options.split(","):
            name, _, value = option.strip().partition("=")
            if name.strip() == "batchSize" and value.strip().isdigit():
                low, high = BATCH_SIZES
                return max(low, min(high, int(value)))
        return self.config.query_batch_size

    # --- names: refused as Salesforce refuses them ----------------------------------------

    def check(self, query: soql.Query, sobject: str) -> None:
        for name in query.names():
            self.check_path(sobject, name)
        for child in query.children:
            self.check(child, self.child_type(sobject, child.sobject)[0])

    def check_path(self, sobject: str, path: str) -> None:
        *relations, last = path.split(".")
        for relation in relations:
            target = PARENT_RELATIONSHIPS.get((sobject, relation))
            if target is None or not self.store.has_type(target[0]):
                raise SObjectError(400, "INVALID_FIELD", f"Didn't understand relationship "
                                   f"'{relation}' in field path. {_CUSTOM_HINT}", [path])
            sobject = target[0]
        self.store.check_fields(sobject, [last])

    def child_type(self, sobject: str, relationship: str) -> tuple[str, str]:
        """(child type, its lookup field) of ``sobject``'s child relationship."""
        child = CHILD_RELATIONSHIPS.get((sobject, relationship))
        if child is None or not self.store.has_type(child[0]):
            raise SObjectError(400, "INVALID_TYPE", f"Didn't understand relationship "
                               f"'{relationship}' in FROM part of query call. {_CUSTOM_HINT}")
        return child

    # --- rows: dot paths resolved, children nested -----------------------------------------

    def matching(self, query: soql.Query, sobject: str, rows: list[Record]) -> list[Record]:
        """The rows that match, in order, each with the dot paths the query names."""
        paths = [name for name in query.names() if "." in name]
        views = [{**row, **{path: self.value(sobject, row, path) for path in paths}}
                 for row in rows]
        return query.run(views, sfid.same)

    def value(self, sobject: str, row: Record, path: str) -> Any:
        *relations, last = path.split(".")
        for relation in relations:
            sobject, parent = self.parent(sobject, row, relation)
            if parent is None:
                return None
            row = parent
        return row.get(last)

    def parent(self, sobject: str, row: Record, relation: str) -> tuple[str, Record | None]:
        target, lookup = PARENT_RELATIONSHIPS[(sobject, relation)]
        ref = row.get(lookup)
        if not ref:
            return target, None
        try:
            return target, self.store.get(target, str(ref))
        except SObjectError:
            return target, None

    def render(self, query: soql.Query, sobject: str, row: Record,
               version: str) -> dict[str, Any]:
        out = self.record(sobject, row, version, query.fields)
        for child in query.children:
            out[child.sobject] = self.children(child, sobject, row, version)
        return out

    def record(self, sobject: str, row: Record, version: str,
               fields: list[str]) -> dict[str, Any]:
        """A record as the API shows it: ``attributes`` first, then the fields in the order
        asked, a parent's fields nested under the relationship (null without a parent)."""
        out: dict[str, Any] = {"attributes": {
            "type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{row['Id']}"}}
        nested: dict[str, list[str]] = {}
        for name in fields:
            relation, dot, rest = name.partition(".")
            if dot:
                out.setdefault(relation, None)
                nested.setdefault(relation, []).append(rest)
            else:
                out[name] = row.get(name)
        for relation, rests in nested.items():
            target, parent = self.parent(sobject, row, relation)
            out[relation] = None if parent is None else self.record(target, parent, version,
                                                                    rests)
        return out

    def children(self, child: soql.Query, sobject: str, row: Record,
                 version: str) -> dict[str, Any] | None:
        """A subquery's result for one parent row: null when empty, else a query result
        paged at ``child_batch_size`` rows."""
        child_type, lookup = self.child_type(sobject, child.sobject)
        rows = [self.store.get(child_type, key)
                for key in self.store.where(child_type, lookup, row["Id"])]
        matched = self.matching(child, child_type, rows)
        if not matched:
            return None
        records = [self.render(child, child_type, r, version) for r in matched]
        size = self.config.child_batch_size
        locator = self.cursors.open(records, size) if len(records) > size else None
        return page(version, records, locator, 0, size)


def ids_wanted(query: soql.Query) -> set[str] | None:
    """The 15-character ids a query's ``WHERE Id IN (...)`` (or ``Id = ...``) allows, so
    that only those rows are looked at; ``None`` when it names no such list of valid ids
    (every row is looked at). The conditions are ANDed: the others still apply."""
    for condition in query.where:
        if condition.field != "Id" or condition.op not in ("IN", "="):
            continue
        values = condition.value if condition.op == "IN" else [condition.value]
        if all(isinstance(v, str) and sfid.is_valid(v) for v in values):
            return {sfid.to15(v) for v in values}
    return None


def page(version: str, records: list[dict[str, Any]], locator: str | None, offset: int,
         size: int) -> dict[str, Any]:
    end = offset + size
    body: dict[str, Any] = {"totalSize": len(records), "done": end >= len(records)}
    if locator is not None and end < len(records):
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{end}"
    body["records"] = records[offset:end]
    return body


class Cursors:
    """The answers of open queries, kept for their ``nextRecordsUrl`` pages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[str, tuple[list[dict[str, Any]], int]] = OrderedDict()
        self._ids = itertools.count(1)

    def open(self, records: list[dict[str, Any]], size: int) -> str:
        with self._lock:
            locator = f"01gSB{next(self._ids):010d}"
            self._open[locator] = (records, size)
            while len(self._open) > OPEN_CURSORS:
                self._open.popitem(last=False)
            return locator

    def get(self, locator: str) -> tuple[list[dict[str, Any]], int] | None:
        with self._lock:
            return self._open.get(locator)
