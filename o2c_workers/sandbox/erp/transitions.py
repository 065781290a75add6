"""A Sales Order after it is submitted: cancelled, amended, closed or re-opened, delivered.

As Frappe and ERPNext do it (messages and exception types are Frappe's):

* cancel (``POST /api/method/frappe.client.cancel`` ``{doctype, name}``): docstatus 1 → 2,
  status ``Cancelled``, answered with the document as ``message``; the ``on_cancel`` webhook.
  Refused (417): a draft (``DocstatusTransitionError``), a cancelled document ("Cannot edit
  cancelled document"), a closed order ("Closed order cannot be cancelled. Unclose to
  cancel."), an order with a submitted Sales Invoice or with deliveries ("... must be
  cancelled before cancelling this Sales Order"). Only Sales Orders are cancelled here.
* amend: a new document whose ``amended_from`` names a cancelled one; it is named after it,
  ``<original>-1``, then ``<original>-2`` for an amendment of the amendment. Amending a
  document that is not cancelled is refused ("... cannot be amended because it is not
  cancelled ..."); amending one twice collides on the name (409).
* close and re-open (``POST /api/method/erpnext.selling.doctype.sales_order.sales_order.
  update_status`` ``{status: "Closed" | "Draft", name}``): ``Closed``, or the status its
  billing and delivery give it again.
* deliver (``POST /_sandbox/orders/{name}/deliver``, the simulator has no Delivery Notes):
  ``per_delivered`` 100 and the status that follows.

Every status change of a submitted order sends ``on_update_after_submit``.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from o2c_workers.sandbox.erp import masters
from o2c_workers.sandbox.erp.documents import Doc, DocumentStore, meta_of
from o2c_workers.sandbox.erp.errors import FrappeError, number, validation
from o2c_workers.sandbox.erp.webhooks import WebhookSender

UPDATE_STATUS_METHOD = "erpnext.selling.doctype.sales_order.sales_order.update_status"
HUNDRED = Decimal(100)


def order_status(order: Doc) -> str:
    """The status ERPNext derives for a submitted, open Sales Order."""
    billed = number(order.get("per_billed") or 0, "per_billed") >= HUNDRED
    delivered = number(order.get("per_delivered") or 0, "per_delivered") >= HUNDRED
    if billed and delivered:
        return "Completed"
    if billed:
        return "To Deliver"
    if delivered:
        return "To Bill"
    return "To Deliver and Bill"


def amendment_name(store: DocumentStore, doctype: str, amended_from: str) -> str:
    """Frappe's name of an amendment: ``X-1`` of ``X``, ``X-2`` of ``X-1``."""
    source = store.get(doctype, amended_from)
    if source.get("amended_from"):
        stem, _, count = amended_from.rpartition("-")
        if count.isdigit():
            return f"{stem}-{int(count) + 1}"
    return f"{amended_from}-1"


def check_amendment(store: DocumentStore, doc: Doc) -> str:
    """The name of ``doc``, an amendment; refused unless what it amends is cancelled."""
    doctype, source = doc["doctype"], doc.get("amended_from")
    if not meta_of(doctype).submittable:
        raise validation(f"{doctype} cannot be amended")
    masters.link(store, doctype, source, "Amended From")
    if store.get(doctype, str(source)).get("docstatus") != 2:
        raise FrappeError(417, "ValidationError", f"{doctype} {source} cannot be amended "
                          "because it is not cancelled. Please cancel the document before "
                          "creating an amendment.", title="Amendment Not Allowed")
    return amendment_name(store, doctype, str(source))


class Transitions:
    """Cancel, close, re-open and deliver submitted Sales Orders (under the store's lock)."""

    def __init__(self, store: DocumentStore, webhooks: WebhookSender) -> None:
        self._store = store
        self._webhooks = webhooks

    def cancel(self, doctype: Any, name: Any) -> Doc:
        with self._store.lock:
            meta = meta_of(str(doctype))
            current = self._store.get(meta.name, str(name))
            self._check_cancel(current)
            doc = copy.deepcopy(current)
            doc.update(docstatus=2, status="Cancelled")
            saved = self._store.save(doc)
            self._webhooks.post("on_cancel", copy.deepcopy(saved))
            return copy.deepcopy(saved)

    def update_status(self, status: Any, name: Any) -> None:
        """ERPNext's close (``Closed``) and re-open (``Draft``) of a Sales Order."""
        if status not in ("Closed", "Draft"):
            raise validation(f"Invalid status: {status}")
        with self._store.lock:
            order = copy.deepcopy(self._submitted_order(name))
            self._set_status(order, "Closed" if status == "Closed" else order_status(order))

    def deliver(self, name: str) -> Doc:
        """Everything delivered (what a submitted Delivery Note would record)."""
        with self._store.lock:
            order = copy.deepcopy(self._submitted_order(name))
            if order.get("status") == "Closed":
                raise validation(f"Sales Order {name} is closed")
            order.update(per_delivered=100, delivery_status="Fully Delivered")
            return self._set_status(order, order_status(order))

    def _submitted_order(self, name: Any) -> Doc:
        order = self._store.get("Sales Order", str(name))
        if order.get("docstatus") != 1:
            raise validation(f"Sales Order {name} is not submitted")
        return order

    def _set_status(self, order: Doc, status: str) -> Doc:
        changed = order.get("status") != status
        order["status"] = status
        saved = self._store.save(order)
        if changed:
            self._webhooks.post("on_update_after_submit", copy.deepcopy(saved))
        return copy.deepcopy(saved)

    def _check_cancel(self, doc: Doc) -> None:
        docstatus = doc.get("docstatus")
        if docstatus == 2:
            raise validation("Cannot edit cancelled document")
        if docstatus != 1:
            raise validation("Cannot change docstatus from 0 (Draft) to 2 (Cancelled)",
                             "DocstatusTransitionError")
        if doc["doctype"] != "Sales Order":
            raise validation(f"Cancelling a {doc['doctype']} is not simulated")
        if doc.get("status") == "Closed":
            raise validation("Closed order cannot be cancelled. Unclose to cancel.")
        invoices = sorted({inv["name"] for inv in self._store.all("Sales Invoice")
                           if inv.get("docstatus") == 1 and any(
                               row.get("sales_order") == doc["name"] for row in inv["items"])})
        if invoices:
            raise validation(f"Sales Invoice {', '.join(invoices)} must be cancelled before "
                             "cancelling this Sales Order")
        if number(doc.get("per_delivered") or 0, "per_delivered") > 0:
            raise validation("Delivery Notes against this Sales Order must be cancelled "
                             "before cancelling this Sales Order")
