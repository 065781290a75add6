"""The ``Custom Field`` documents of the integration: ``salesforce_id`` on each DocType.

Frappe keeps a custom field's metadata as a ``Custom Field`` document named
``<dt>-<fieldname>``; ``unique: 1`` puts a unique index on the column. The simulator seeds
one per DocType that has the field, unique unless ``ErpConfig.non_unique_salesforce_id``
names it, and a change of the flag (``PUT /api/resource/Custom Field/<name>``) adds or drops
the index: adding it is refused while duplicates exist, as Frappe refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable

from o2c_workers.sandbox.erp.documents import DOCTYPES, Doc, DocumentStore
from o2c_workers.sandbox.erp.errors import number

FIELDNAME = "salesforce_id"


def seed(store: DocumentStore, *, non_unique: Iterable[str] = ()) -> None:
    """One ``Custom Field`` per DocType with a ``salesforce_id``."""
    off = set(non_unique)
    unknown = off - {m.name for m in DOCTYPES.values() if FIELDNAME in m.unique}
    if unknown:
        raise ValueError(f"no salesforce_id field on: {', '.join(sorted(unknown))}")
    for meta in DOCTYPES.values():
        if FIELDNAME not in meta.unique:
            continue
        doc: Doc = {"doctype": "Custom Field", "docstatus": 0, "dt": meta.name,
                    "fieldname": FIELDNAME, "label": "Salesforce ID", "fieldtype": "Data",
                    "unique": 0 if meta.name in off else 1, "read_only": 1,
                    "insert_after": "title" if meta.name == "Sales Order" else "naming_series"}
        apply(store, doc)
        store.insert(doc)


def apply(store: DocumentStore, doc: Doc) -> None:
    """Bring the store's unique index in line with a ``Custom Field`` being saved."""
    value = doc.get("unique") or 0
    unique = value if isinstance(value, bool) else bool(int(number(value, "unique")))
    doc["unique"] = int(unique)
    store.set_unique(str(doc.get("dt")), str(doc.get("fieldname")), unique)
