"""The ERPNext change feed: the DocTypes whose webhooks the fleet routes, and the master data
it caches (``MASTERS``), read by ``modified``.

One DocType after the other, each with one list call a page::

    GET /api/resource/Sales Invoice?filters=[["modified", ">=", "2026-11-28 00:00:00.000000"],
        ["docstatus", "in", [1]]]&order_by=modified asc, name asc&limit_page_length=500
        &fields=["name", "creation", "modified", "docstatus", "salesforce_id", "po_no"]

Paging is by key, not by offset (``limit_start``): the next page asks for the rows after the
last one read, ``modified`` later, or the same with a later ``name`` (``or_filters``
``[["modified", ">", last], ["name", ">", its name]]``). A document saved while the feed
pages moves past the end and is read again, at its new version, on a later page; with an
offset it would shift a document not yet read into the pages already read, never to be
read at all.

``modified`` comes without an offset, in the site's time zone (``O2C_ERP_TIME_ZONE``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from o2c_workers.errors import InvalidPayload
from o2c_workers.models import ChangeCursor, ChangePage, ErpChange

#: ``read(doctype, params)``: the ``data`` rows of one list call.
Read = Callable[[str, dict[str, Any]], list[dict[str, Any]]]

_STAMP = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class Watched:
    """One DocType of the feed: the states whose events are routed, the fields to read."""

    doctype: str
    docstatus: tuple[int, ...]
    fields: tuple[str, ...]


#: Master data the fleet caches (``erp.cache``): every save is a version (``MASTER_EVENT``)
#: that invalidates what the cache holds of it.
MASTERS = ("Item", "Item Price", "Price List", "Tax Rule", "Sales Taxes and Charges Template",
           "Customer")
MASTER_EVENT = "on_change"

#: What the feed reads, in order (``salesforce_id`` and ``po_no`` give the trace key). New
#: DocTypes go last: a cursor names its DocType by place.
WATCHED = (
    Watched("Sales Invoice", (1,), ("salesforce_id", "po_no")),
    Watched("Payment Entry", (1,), ("salesforce_id",)),
    Watched("Sales Order", (1, 2), ("salesforce_id", "po_no")),
    *(Watched(doctype, (0,), ("salesforce_id",) if doctype == "Customer" else ())
      for doctype in MASTERS),
)
_META = ("name", "creation", "modified", "docstatus")


def event_of(doctype: str, row: dict[str, Any]) -> str | None:
    """The webhook event a document version stands for; None when no webhook of ours
    would have been sent for it."""
    if doctype in MASTERS:
        return MASTER_EVENT
    docstatus = int(row.get("docstatus") or 0)
    unchanged = row.get("modified") == row.get("creation")
    if doctype == "Sales Order":
        if docstatus == 2:
            return "on_cancel"
        # Submitted on creation and not changed since: no status change to announce (the
        # order step writes the new order back itself).
        return None if unchanged or docstatus != 1 else "on_update_after_submit"
    if docstatus != 1:
        return None
    return "on_submit" if unchanged else "on_update_after_submit"


def to_epoch(modified: str, zone: dt.tzinfo) -> float:
    """An ERP timestamp (no offset, the site's time zone) as epoch seconds."""
    try:
        stamp = dt.datetime.fromisoformat(modified.strip())
    except (AttributeError, ValueError):
        raise InvalidPayload(f"the ERP sent a modification time that is not one: "
                             f"{modified!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=zone)
    return stamp.timestamp()


def to_stamp(epoch_s: float, zone: dt.tzinfo) -> str:
    """Epoch seconds as the site writes a timestamp."""
    return dt.datetime.fromtimestamp(epoch_s, zone).strftime(_STAMP)


@dataclass(frozen=True)
class _Position:
    """The DocType being read, and the key of the last row read (none: from ``after``)."""

    watched: int
    after: str
    name: str | None = None

    def dumps(self) -> str:
        return json.dumps([self.watched, self.after, self.name])

    @classmethod
    def of(cls, cursor: ChangeCursor, zone: dt.tzinfo) -> _Position:
        if cursor.position is None:
            return cls(0, to_stamp(cursor.since, zone))
        try:
            watched, after, name = json.loads(cursor.position)
            if not 0 <= int(watched) < len(WATCHED):
                raise ValueError(watched)
            return cls(int(watched), str(after), None if name is None else str(name))
        except (ValueError, TypeError):
            raise InvalidPayload(f"not a cursor of this feed: {cursor.position!r}") from None


def page(cursor: ChangeCursor, *, zone: dt.tzinfo, read: Read) -> ChangePage:
    """One page of changes from ``cursor`` (one list call), and the next cursor."""
    at = _Position.of(cursor, zone)
    watched = WATCHED[at.watched]
    params = {
        "filters": json.dumps([["modified", ">=", at.after],
                               ["docstatus", "in", list(watched.docstatus)]]),
        "fields": json.dumps([*_META, *watched.fields]),
        "order_by": "modified asc, name asc", "limit_page_length": str(cursor.page_size)}
    if at.name is not None:
        params["or_filters"] = json.dumps([["modified", ">", at.after],
                                           ["name", ">", at.name]])
    rows = read(watched.doctype, params)
    changes = [change for row in rows if (change := _change(watched.doctype, row, zone))]
    if watched.doctype in MASTERS:
        return ChangePage(changes=[], masters=changes, next=_next(cursor, at, rows, zone))
    return ChangePage(changes=changes, next=_next(cursor, at, rows, zone))


def _change(doctype: str, row: dict[str, Any], zone: dt.tzinfo) -> ErpChange | None:
    event = event_of(doctype, row)
    if event is None:
        return None
    modified = str(row.get("modified") or "")
    return ErpChange(doctype=doctype, name=str(row["name"]), event=event, modified=modified,
                     modified_at=to_epoch(modified, zone),
                     salesforce_id=_text(row.get("salesforce_id")), po_no=_text(row.get("po_no")))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _next(cursor: ChangeCursor, at: _Position, rows: list[dict[str, Any]],
          zone: dt.tzinfo) -> ChangeCursor | None:
    if len(rows) < cursor.page_size:
        if at.watched + 1 >= len(WATCHED):
            return None
        position = _Position(at.watched + 1, to_stamp(cursor.since, zone))
    else:
        last = rows[-1]
        position = _Position(at.watched, str(last.get("modified") or ""), str(last["name"]))
    return cursor.model_copy(update={"position": position.dumps()})
