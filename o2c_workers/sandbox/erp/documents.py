"""An in-memory DocType store: naming series, child rows, and the unique ``salesforce_id``.

Every method takes the store's lock; callers that read, decide and write in one step hold
``store.lock`` (re-entrant) around the whole step so that two threads never both insert.

A unique field is a database index in Frappe: it holds every document, cancelled ones too.
Whether ``salesforce_id`` is unique on a DocType is its ``Custom Field`` document's
``unique`` flag (``customfields.py``); a DocType whose flag is off takes duplicates.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from o2c_workers.sandbox.erp.errors import FrappeError, not_found

Doc = dict[str, Any]

#: Fields Frappe sets on every document; never taken from a request.
META_FIELDS = ("name", "owner", "creation", "modified", "modified_by", "docstatus", "idx",
               "doctype")


@dataclass(frozen=True)
class DocTypeMeta:
    """What the simulator knows of one DocType."""

    name: str
    #: ``series:<PREFIX>`` (``.YYYY.`` is the year), ``field:<fieldname>``, ``hash``, or
    #: ``custom_field`` (``<dt>-<fieldname>``).
    naming: str
    submittable: bool = False
    #: Child table fieldname → child DocType.
    child_tables: dict[str, str] = field(default_factory=dict)
    unique: tuple[str, ...] = ()
    mandatory: tuple[str, ...] = ()


_SF = ("salesforce_id",)

DOCTYPES: dict[str, DocTypeMeta] = {m.name: m for m in (
    DocTypeMeta("Customer", "field:customer_name", unique=_SF, mandatory=("customer_name",),
                child_tables={"credit_limits": "Customer Credit Limit"}),
    DocTypeMeta("Item", "field:item_code", mandatory=("item_code",)),
    DocTypeMeta("Price List", "field:price_list_name", mandatory=("price_list_name", "currency")),
    DocTypeMeta("Item Price", "hash", mandatory=("item_code", "price_list", "price_list_rate")),
    DocTypeMeta("Sales Taxes and Charges Template", "field:title", mandatory=("title",),
                child_tables={"taxes": "Sales Taxes and Charges"}),
    DocTypeMeta("Tax Rule", "series:ACC-TAX-RULE-.YYYY.-",
                mandatory=("sales_tax_template", "billing_country")),
    DocTypeMeta("Sales Order", "series:SAL-ORD-.YYYY.-", submittable=True, unique=_SF,
                mandatory=("customer", "items"),
                child_tables={"items": "Sales Order Item", "taxes": "Sales Taxes and Charges"}),
    DocTypeMeta("Sales Invoice", "series:ACC-SINV-.YYYY.-", submittable=True, unique=_SF,
                mandatory=("customer", "items"),
                child_tables={"items": "Sales Invoice Item", "taxes": "Sales Taxes and Charges"}),
    DocTypeMeta("Payment Entry", "series:ACC-PAY-.YYYY.-", submittable=True, unique=_SF,
                mandatory=("party", "paid_amount"),
                child_tables={"references": "Payment Entry Reference"}),
    # Named "<dt>-<fieldname>", as Frappe names its Custom Fields.
    DocTypeMeta("Custom Field", "custom_field", mandatory=("dt", "fieldname")),
)}


def now(zone: dt.tzinfo = dt.UTC) -> str:
    """A timestamp as Frappe writes one, in the site's time zone and without it:
    ``2026-11-20 13:40:22.123456``."""
    return dt.datetime.now(zone).strftime("%Y-%m-%d %H:%M:%S.%f")


def meta_of(doctype: str) -> DocTypeMeta:
    try:
        return DOCTYPES[doctype]
    except KeyError:
        raise not_found("DocType", doctype) from None


class DocumentStore:
    """Documents by DocType and name, with the unique index on ``salesforce_id``."""

    def __init__(self, *, seed: int, zone: dt.tzinfo = dt.UTC) -> None:
        self.lock = threading.RLock()
        #: The site's time zone (System Settings): ``creation`` and ``modified`` are in it.
        self.zone = zone
        self._docs: dict[str, dict[str, Doc]] = {name: {} for name in DOCTYPES}
        self._series: Counter[str] = Counter()
        self._unique: dict[tuple[str, str, str], str] = {}
        #: (DocType, fieldname) of the unique fields switched off (a Custom Field's flag).
        self._not_unique: set[tuple[str, str]] = set()
        self._rng = random.Random(seed)
        self._created: Counter[str] = Counter()

    def unique_fields(self, doctype: str) -> tuple[str, ...]:
        meta = meta_of(doctype)
        return tuple(f for f in meta.unique if (meta.name, f) not in self._not_unique)

    def set_unique(self, doctype: str, fieldname: str, unique: bool) -> None:
        """Add or drop the unique index of a field; adding it refuses existing duplicates
        with Frappe's message, and changes nothing then."""
        meta = meta_of(doctype)
        if fieldname not in meta.unique:
            return
        with self.lock:
            if not unique:
                self._not_unique.add((meta.name, fieldname))
                self._unique = {k: v for k, v in self._unique.items()
                                if k[:2] != (meta.name, fieldname)}
                return
            values = [str(d[fieldname]) for d in self._docs[meta.name].values()
                      if d.get(fieldname) not in (None, "")]
            if len(values) != len(set(values)):
                raise FrappeError(417, "ValidationError", f"{fieldname} field cannot be set as "
                                  f"unique in {meta.name}, as there are non-unique existing "
                                  "values")
            self._not_unique.discard((meta.name, fieldname))
            for doc in self._docs[meta.name].values():
                self._index(meta, doc)

    def exists(self, doctype: str, name: str) -> bool:
        with self.lock:
            return name in self._docs[meta_of(doctype).name]

    def get(self, doctype: str, name: str) -> Doc:
        """The stored document itself (hold ``lock`` while using it)."""
        with self.lock:
            try:
                return self._docs[meta_of(doctype).name][name]
            except KeyError:
                raise not_found(doctype, name) from None

    def copy(self, doctype: str, name: str) -> Doc:
        with self.lock:
            return copy.deepcopy(self.get(doctype, name))

    def all(self, doctype: str) -> list[Doc]:
        with self.lock:
            return list(self._docs[meta_of(doctype).name].values())

    def find(self, doctype: str, fieldname: str, value: Any) -> Doc | None:
        with self.lock:
            for doc in self._docs[meta_of(doctype).name].values():
                if doc.get(fieldname) == value:
                    return doc
            return None

    def check_unique(self, doc: Doc, *, name: str | None = None) -> None:
        """Refuse ``doc`` when another document holds one of its unique values (409)."""
        meta = meta_of(doc["doctype"])
        with self.lock:
            for fieldname in self.unique_fields(meta.name):
                value = doc.get(fieldname)
                if value in (None, ""):
                    continue
                holder = self._unique.get((meta.name, fieldname, str(value)))
                if holder is not None and holder != name:
                    raise FrappeError(
                        409, "DuplicateEntryError",
                        f"{meta.name} with {fieldname} {value} already exists: {holder}",
                        title="Duplicate Entry")

    def insert(self, doc: Doc, *, user: str = "Administrator", name: str | None = None) -> Doc:
        """Name (``name``, else by the DocType's naming) and store ``doc`` (validated by the
        caller); returns the stored document."""
        meta = meta_of(doc["doctype"])
        with self.lock:
            self.check_unique(doc)
            name = name or self._new_name(meta, doc)
            if name in self._docs[meta.name]:
                raise FrappeError(409, "DuplicateEntryError",
                                  f"{meta.name} {name} already exists", title="Duplicate Name")
            stamp = now(self.zone)
            # Frappe answers with the standard fields first.
            head = {"name": name, "owner": user, "creation": stamp, "modified": stamp,
                    "modified_by": user, "docstatus": int(doc.get("docstatus") or 0),
                    "idx": 0}
            body = {k: v for k, v in doc.items() if k not in head}
            doc.clear()
            doc.update(head, **body)
            self._stamp_children(meta, doc)
            self._docs[meta.name][name] = doc
            self._index(meta, doc)
            self._created[meta.name] += 1
            return doc

    def save(self, doc: Doc, *, user: str = "Administrator") -> Doc:
        """Store ``doc`` in place of the document of the same name; refreshes ``modified``."""
        meta = meta_of(doc["doctype"])
        with self.lock:
            self.get(meta.name, doc["name"])
            self.check_unique(doc, name=doc["name"])
            self._unindex(meta, doc["name"])
            doc.update(modified=now(self.zone), modified_by=user)
            self._stamp_children(meta, doc)
            self._docs[meta.name][doc["name"]] = doc
            self._index(meta, doc)
            return doc

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {doctype: len(docs) for doctype, docs in self._docs.items()}

    def created(self) -> dict[str, int]:
        with self.lock:
            return dict(self._created)

    def _new_name(self, meta: DocTypeMeta, doc: Doc) -> str:
        kind, _, arg = meta.naming.partition(":")
        if kind == "series":
            prefix = arg.replace(".YYYY.", str(dt.date.today().year))
            self._series[prefix] += 1
            return f"{prefix}{self._series[prefix]:05d}"
        if kind == "custom_field":
            return f"{doc.get('dt')}-{doc.get('fieldname')}"
        if kind == "field":
            base = str(doc.get(arg) or "").strip()
            if meta.name != "Customer" or base not in self._docs[meta.name]:
                return base
            # ERPNext names a second "Acme" customer "Acme - 1", then "Acme - 2".
            count = 1
            while f"{base} - {count}" in self._docs[meta.name]:
                count += 1
            return f"{base} - {count}"
        return self._hash()

    def _hash(self) -> str:
        return "".join(self._rng.choice("0123456789abcdef") for _ in range(10))

    def _stamp_children(self, meta: DocTypeMeta, doc: Doc) -> None:
        for fieldname, child_doctype in meta.child_tables.items():
            rows = doc.get(fieldname) or []
            for idx, row in enumerate(rows, start=1):
                row.setdefault("name", self._hash())
                row.update(parent=doc["name"], parentfield=fieldname, parenttype=meta.name,
                           idx=idx, doctype=child_doctype, docstatus=doc["docstatus"])
            doc[fieldname] = rows

    def _index(self, meta: DocTypeMeta, doc: Doc) -> None:
        for fieldname in self.unique_fields(meta.name):
            value = doc.get(fieldname)
            if value not in (None, ""):
                self._unique[(meta.name, fieldname, str(value))] = doc["name"]

    def _unindex(self, meta: DocTypeMeta, name: str) -> None:
        for key in [k for k, v in self._unique.items() if k[0] == meta.name and v == name]:
            del self._unique[key]
