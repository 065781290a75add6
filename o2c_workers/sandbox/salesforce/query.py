"""``GET /services/data/vNN.0/query?q=...`` and its ``nextRecordsUrl`` pages: SOQL answered
page by page from the org's records, in Salesforce's answer and error shapes."""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from o2c_workers import sfid
from o2c_workers.sandbox.salesforce import soql
from o2c_workers.sandbox.salesforce.config import SalesforceConfig
from o2c_workers.sandbox.salesforce.store import SObjectError, Store
from o2c_workers.sandbox.salesforce.wsgi import Request, Response
from o2c_workers.sandbox.world import Record

#: Open query locators kept (the oldest is forgotten first), and the batch sizes a
#: ``Sforce-Query-Options`` header may ask for.
OPEN_CURSORS = 100
BATCH_SIZES = (200, 2000)

Render = Callable[[str, Record, str, list[str]], dict[str, Any]]


class QueryApi:
    """Runs a query on the store and keeps its answer for the pages that follow."""

    def __init__(self, store: Store, config: SalesforceConfig, *, render: Render) -> None:
        self.store = store
        self.config = config
        self.render = render
        self.cursors = Cursors()

    def query(self, request: Request, version: str) -> Response:
        query = soql.parse(request.arg("q") or "")
        if not self.store.has_type(query.sobject):
            raise SObjectError(400, "INVALID_TYPE",
                               f"sObject type '{query.sobject}' is not supported.")
        self.store.check_fields(query.sobject, query.names())
        with self.store.lock:
            rows = query.run(self.store.all(query.sobject), sfid.same)
        records = [self.render(query.sobject, row, version, query.fields) for row in rows]
        size = self.batch_size(request)
        locator = self.cursors.open(records, size) if len(records) > size else None
        return page(version, records, locator, 0, size)

    def more(self, version: str, ident: str) -> Response:
        """The page ``{locator}-{offset}`` of an open query."""
        locator, _, offset = ident.rpartition("-")
        opened = self.cursors.get(locator)
        if opened is None or not offset.isdigit() or int(offset) >= len(opened[0]):
            raise SObjectError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        records, size = opened
        return page(version, records, locator, int(offset), size)

    def batch_size(self, request: Request) -> int:
        """``Sforce-Query-Options: batchSize=n`` (200 to 2000), else the org's page size."""
        options = request.headers.get("sforce-query-options") or ""
        for option in options.split(","):
            name, _, value = option.strip().partition("=")
            if name.strip() == "batchSize" and value.strip().isdigit():
                low, high = BATCH_SIZES
                return max(low, min(high, int(value)))
        return self.config.query_batch_size


def page(version: str, records: list[dict[str, Any]], locator: str | None, offset: int,
         size: int) -> Response:
    end = offset + size
    body: dict[str, Any] = {"totalSize": len(records), "done": end >= len(records)}
    if locator is not None and end < len(records):
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{end}"
    body["records"] = records[offset:end]
    return Response.json(body)


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
