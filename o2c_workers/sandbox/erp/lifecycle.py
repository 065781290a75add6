"""What happens after a Sales Order is submitted: an invoice, then (perhaps) a payment.

A submitted Sales Order is invoiced ``invoice_delay_s`` later by a submitted Sales Invoice
with the same lines, taxes and totals; ``payment_delay_s`` after that a Payment Entry
(``payment_type`` Receive) pays it in full, in part (``partial_payment_ratio``) or never
(``unpaid_ratio``), chosen from the seed and the order's name so that runs repeat. Statuses:

* Sales Order: ``To Deliver and Bill`` → ``To Deliver`` (billed; ``Completed`` when it was
  delivered already) → ``Completed`` (paid in full; the simulator treats a paid order as
  delivered). A cancelled or closed order is not invoiced (``transitions.py``).
* Sales Invoice: ``Unpaid`` → ``Partly Paid`` / ``Paid``, with ``outstanding_amount``.

Webhooks: ``on_submit`` for every submitted Sales Invoice and Payment Entry, and
``on_update_after_submit`` whenever a Sales Order's status changes.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import random
from collections.abc import Callable
from decimal import Decimal

from o2c_workers.sandbox.delay import DelayQueue
from o2c_workers.sandbox.erp.config import ErpConfig
from o2c_workers.sandbox.erp.documents import Doc, DocumentStore
from o2c_workers.sandbox.erp.errors import FrappeError, money
from o2c_workers.sandbox.erp.transitions import order_status
from o2c_workers.sandbox.erp.webhooks import WebhookSender

log = logging.getLogger("o2c.sandbox.erp.lifecycle")

#: Fields an invoice copies from its order.
_COPIED = ("customer", "customer_name", "company", "currency", "selling_price_list",
           "price_list_currency", "conversion_rate", "plc_conversion_rate", "taxes_and_charges",
           "total_qty", "total", "net_total", "base_net_total", "total_taxes_and_charges",
           "grand_total", "base_grand_total", "rounded_total", "disable_rounded_total", "po_no")
_ROW_FIELDS = ("item_code", "item_name", "qty", "uom", "stock_uom", "conversion_factor",
               "price_list_rate", "discount_percentage", "discount_amount", "rate", "amount",
               "net_rate", "net_amount", "base_rate", "base_amount")


def mark_status(doc: Doc) -> None:
    """Set the status fields of a document being saved as draft or submitted."""
    submitted = doc.get("docstatus") == 1
    match doc["doctype"]:
        case "Sales Order":
            doc.update(status="To Deliver and Bill" if submitted else "Draft", per_billed=0,
                       per_delivered=0, billing_status="Not Billed",
                       delivery_status="Not Delivered", advance_paid=0)
        case "Sales Invoice":
            doc.update(status="Unpaid" if submitted else "Draft",
                       outstanding_amount=doc["grand_total"])
        case "Payment Entry":
            doc["status"] = "Submitted" if submitted else "Draft"


class Lifecycle:
    """Schedules invoicing and payment on a background thread, and emits the webhooks."""

    def __init__(self, store: DocumentStore, config: ErpConfig, webhooks: WebhookSender) -> None:
        self._store = store
        self._config = config
        self._webhooks = webhooks
        self._queue = DelayQueue("erp-lifecycle")

    def on_submit(self, doc: Doc) -> None:
        """React to a submitted document (called under the store's lock)."""
        match doc["doctype"]:
            case "Sales Order":
                name = doc["name"]
                self._later(self._config.invoice_delay_s, lambda: self._invoice(name))
            case "Sales Invoice":
                self._webhooks.post("on_submit", copy.deepcopy(doc))
                self._invoice_submitted(doc)
            case "Payment Entry":
                self._webhooks.post("on_submit", copy.deepcopy(doc))
                self._apply_payment(doc)

    def start(self) -> None:
        self._queue.start()

    def stop(self) -> None:
        self._queue.stop()

    def scheduled(self) -> int:
        """Invoices and payments still to come (waiting or being made)."""
        return self._queue.pending()

    def _later(self, delay_s: float, job: Callable[[], None]) -> None:
        def step() -> None:
            try:
                job()
            except FrappeError as exc:
                log.warning("lifecycle step refused: %s %s", exc.exc_type, exc.message)

        self._queue.later(delay_s, step)

    def invoice_now(self, order_name: str) -> None:
        """Invoice a submitted order at once (its scheduled invoice then finds it billed)."""
        with self._store.lock:
            order = self._store.get("Sales Order", order_name)
            if order["docstatus"] != 1 or order.get("status") == "Closed":
                raise FrappeError(417, "ValidationError",
                                  f"Sales Order {order_name} cannot be invoiced: it is "
                                  f"{order.get('status')}")
            self._invoice(order_name)

    def _invoice(self, order_name: str) -> None:
        with self._store.lock:
            order = self._store.get("Sales Order", order_name)
            if order["docstatus"] != 1 or order.get("per_billed") \
                    or order.get("status") == "Closed":
                return
            invoice: Doc = {key: copy.deepcopy(order.get(key)) for key in _COPIED}
            posting = dt.date.today()
            invoice.update(
                doctype="Sales Invoice", docstatus=1, posting_date=posting.isoformat(),
                due_date=(posting + dt.timedelta(days=30)).isoformat(),
                remarks=f"Against Sales Order {order_name}",
                taxes=[{k: v for k, v in row.items() if k not in ("name", "parent")}
                       for row in copy.deepcopy(order.get("taxes") or [])],
                items=[{**{k: copy.deepcopy(row.get(k)) for k in _ROW_FIELDS},
                        "sales_order": order_name, "so_detail": row["name"]}
                       for row in order["items"]])
            mark_status(invoice)
            saved = self._store.insert(invoice)
            self.on_submit(saved)

    def _invoice_submitted(self, invoice: Doc) -> None:
        orders = {row.get("sales_order") for row in invoice["items"]} - {None}
        for order_name in sorted(orders):
            if not self._store.exists("Sales Order", order_name):
                continue
            order = copy.deepcopy(self._store.get("Sales Order", order_name))
            order.update(per_billed=100, billing_status="Fully Billed")
            self._set_order_status(order, order_status(order))
        share = self._payment_share(invoice)
        if share is not None:
            name = invoice["name"]
            self._later(self._config.payment_delay_s, lambda: self._pay(name, share))

    def _payment_share(self, invoice: Doc) -> Decimal | None:
        """The part of the invoice that will be paid, or None if it never is."""
        orders = sorted({row.get("sales_order") or "" for row in invoice["items"]})
        rng = random.Random(f"{self._config.seed}:{','.join(orders) or invoice['name']}")
        roll = rng.random()
        if roll < self._config.unpaid_ratio:
            return None
        if roll < self._config.unpaid_ratio + self._config.partial_payment_ratio:
            return Decimal(rng.randint(20, 80)) / 100
        return Decimal(1)

    def _pay(self, invoice_name: str, share: Decimal) -> None:
        with self._store.lock:
            invoice = self._store.get("Sales Invoice", invoice_name)
            outstanding = money(invoice["outstanding_amount"])
            amount = min(outstanding, money(money(invoice["grand_total"]) * share))
            if amount <= 0:
                return
            payment: Doc = {
                "doctype": "Payment Entry", "docstatus": 1, "payment_type": "Receive",
                "party_type": "Customer", "party": invoice["customer"],
                "party_name": invoice.get("customer_name"), "company": invoice["company"],
                "posting_date": dt.date.today().isoformat(), "mode_of_payment": "Wire Transfer",
                "paid_amount": amount, "received_amount": amount, "base_paid_amount": amount,
                "paid_from_account_currency": invoice["currency"],
                "paid_to_account_currency": invoice["currency"],
                "reference_no": f"SIM-{invoice_name}",
                "reference_date": dt.date.today().isoformat(),
                "total_allocated_amount": amount, "unallocated_amount": money(0),
                "references": [{"reference_doctype": "Sales Invoice",
                                "reference_name": invoice_name,
                                "total_amount": invoice["grand_total"],
                                "outstanding_amount": outstanding, "allocated_amount": amount,
                                "due_date": invoice.get("due_date")}],
            }
            mark_status(payment)
            saved = self._store.insert(payment)
            self.on_submit(saved)

    def _apply_payment(self, payment: Doc) -> None:
        for ref in payment.get("references") or []:
            if ref.get("reference_doctype") != "Sales Invoice":
                continue
            invoice = copy.deepcopy(self._store.get("Sales Invoice", ref["reference_name"]))
            left = money(invoice["outstanding_amount"]) - money(ref["allocated_amount"])
            invoice["outstanding_amount"] = left
            invoice["status"] = "Paid" if left <= 0 else "Partly Paid"
            self._store.save(invoice)
            if left > 0:
                continue
            orders = {row.get("sales_order") for row in invoice["items"]} - {None}
            for order_name in sorted(orders):
                order = copy.deepcopy(self._store.get("Sales Order", order_name))
                order.update(per_delivered=100, delivery_status="Fully Delivered")
                self._set_order_status(order, "Completed")

    def _set_order_status(self, order: Doc, status: str) -> None:
        changed = order.get("status") != status
        order["status"] = status
        saved = self._store.save(order)
        if changed:
            self._webhooks.post("on_update_after_submit", copy.deepcopy(saved))
