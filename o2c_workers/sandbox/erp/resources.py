"""The ``/api`` endpoints: ``/api/resource/{DocType}[/{name}]`` and a few ``/api/method``s.

Submission: inserting with ``docstatus: 1``, or a PUT of ``{"docstatus": 1}`` on a draft,
submits. A submitted document only takes changes to ``status``; anything else answers 417
``UpdateAfterSubmitError``. Cancelling goes through ``frappe.client.cancel`` (a PUT of
``docstatus: 2`` is refused), amending through an insert with ``amended_from``, closing
through ERPNext's ``update_status`` (``transitions.py``). Saving a ``Custom Field`` adds or
drops its field's unique index (``customfields.py``).
"""

from __future__ import annotations

import copy
from decimal import Decimal, InvalidOperation
from typing import Any

from o2c_workers.sandbox.erp import customfields, query, rules
from o2c_workers.sandbox.erp.documents import META_FIELDS, Doc, DocumentStore, meta_of
from o2c_workers.sandbox.erp.errors import FrappeError, dumps, loads, validation
from o2c_workers.sandbox.erp.lifecycle import Lifecycle, mark_status
from o2c_workers.sandbox.erp.transitions import UPDATE_STATUS_METHOD, Transitions, check_amendment
from o2c_workers.sandbox.world import ErpSeed

#: Fields a submitted document still takes (Frappe's "allow on submit").
ALLOW_ON_SUBMIT = frozenset({"status"})

OUTSTANDING_METHOD = "erpnext.selling.doctype.customer.customer.get_customer_outstanding"


class ResourceApi:
    """Frappe's REST resource and method calls over the document store."""

    def __init__(self, store: DocumentStore, seed: ErpSeed, lifecycle: Lifecycle,
                 transitions: Transitions, *, rate_precision: int = 6) -> None:
        self._rate_places = Decimal(1).scaleb(-rate_precision)
        self._store = store
        self._seed = seed
        self._lifecycle = lifecycle
        self._transitions = transitions

    def list(self, doctype: str, params: dict[str, str]) -> dict[str, Any]:
        meta = meta_of(doctype)
        spec = query.parse(params)
        with self._store.lock:
            rows = query.run(spec, self._store.all(meta.name))
            return {"data": copy.deepcopy(rows)}

    def get(self, doctype: str, name: str) -> dict[str, Any]:
        return {"data": self._store.copy(doctype, name)}

    def insert(self, doctype: str, body: Any) -> dict[str, Any]:
        meta = meta_of(doctype)
        fields = _fields(body)
        docstatus = _docstatus(fields.get("docstatus", 0))
        if docstatus == 2 or (docstatus == 1 and not meta.submittable):
            raise validation(f"Cannot change docstatus from 0 to {docstatus}",
                             "DocstatusTransitionError")
        doc: Doc = {k: v for k, v in fields.items() if k not in META_FIELDS}
        doc.update(doctype=meta.name, docstatus=0)
        with self._store.lock:
            name = check_amendment(self._store, doc) if doc.get("amended_from") else None
            rules.prepare(self._store, self._seed, doc, is_new=True,
                          rate_places=self._rate_places)
            self._store.check_unique(doc)
            if docstatus == 1:
                rules.check_submit(self._store, doc)
                doc["docstatus"] = 1
            mark_status(doc)
            if meta.name == "Custom Field":
                customfields.apply(self._store, doc)
            saved = self._store.insert(doc, name=name)
            if docstatus == 1:
                self._lifecycle.on_submit(saved)
            return {"data": copy.deepcopy(saved)}

    def update(self, doctype: str, name: str, body: Any) -> dict[str, Any]:
        meta = meta_of(doctype)
        fields = _fields(body)
        with self._store.lock:
            current = self._store.get(meta.name, name)
            old = int(current.get("docstatus") or 0)
            new = _docstatus(fields.get("docstatus", old))
            patch = {k: v for k, v in fields.items() if k not in META_FIELDS}
            if old == 1:
                return {"data": self._update_submitted(current, patch, new)}
            if old == 2 or new == 2 or (new == 1 and not meta.submittable):
                raise validation(f"Cannot change docstatus from {old} to {new}",
                                 "DocstatusTransitionError")
            doc = copy.deepcopy(current)
            doc.update(patch)
            rules.prepare(self._store, self._seed, doc, is_new=False,
                          rate_places=self._rate_places)
            self._store.check_unique(doc, name=name)
            if new == 1:
                rules.check_submit(self._store, doc)
                doc["docstatus"] = 1
            if meta.submittable:
                mark_status(doc)
            if meta.name == "Custom Field":
                customfields.apply(self._store, doc)
            saved = self._store.save(doc)
            if new == 1:
                self._lifecycle.on_submit(saved)
            return {"data": copy.deepcopy(saved)}

    def _update_submitted(self, current: Doc, patch: dict[str, Any], new: int) -> Doc:
        if new != 1:
            raise validation(f"Cannot change docstatus from 1 to {new}",
                             "DocstatusTransitionError")
        for key, value in patch.items():
            if key not in ALLOW_ON_SUBMIT and not _same(current.get(key), value):
                label = key.replace("_", " ").title()
                raise validation(f"Not allowed to change {label} after submission",
                                 "UpdateAfterSubmitError")
        doc = copy.deepcopy(current)
        doc.update(patch)
        return copy.deepcopy(self._store.save(doc))

    def method(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        if name == OUTSTANDING_METHOD:
            customer = params.get("customer")
            if not customer or not self._store.exists("Customer", str(customer)):
                raise FrappeError(404, "DoesNotExistError", f"Customer {customer} not found")
            total = rules.outstanding(self._store, str(customer), params.get("company"))
            return {"message": total}
        if name == "frappe.client.get_count":
            doctype = str(params.get("doctype") or "")
            spec = query.parse({"filters": _as_json(params.get("filters")),
                                "limit_page_length": "0"})
            with self._store.lock:
                return {"message": len(query.run(spec, self._store.all(meta_of(doctype).name)))}
        if name == "frappe.client.cancel":
            return {"message": self._transitions.cancel(params.get("doctype"),
                                                        params.get("name"))}
        if name == UPDATE_STATUS_METHOD:
            self._transitions.update_status(params.get("status"), params.get("name"))
            return {}
        if name == "frappe.auth.get_logged_user":
            return {"message": "Administrator"}
        if name == "frappe.ping":
            return {"message": "pong"}
        raise FrappeError(404, "DoesNotExistError", f"Failed to get method for command {name}")


def _fields(body: Any) -> dict[str, Any]:
    if isinstance(body, dict) and isinstance(body.get("data"), str):
        body = loads(body["data"])
    if not isinstance(body, dict):
        raise validation("The request body must be a JSON object")
    return dict(body)


def _docstatus(value: Any) -> int:
    try:
        status = int(value)
    except (TypeError, ValueError):
        raise validation(f"Invalid docstatus: {value!r}") from None
    if status not in (0, 1, 2):
        raise validation(f"Invalid docstatus: {value!r}")
    return status


def _same(current: Any, new: Any) -> bool:
    if current == new:
        return True
    if isinstance(current, int | float | Decimal) and isinstance(new, int | float | Decimal):
        try:
            return Decimal(str(current)) == Decimal(str(new))
        except InvalidOperation:
            return False
    return False


def _as_json(value: Any) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    return dumps(value).decode()
