"""Is ``salesforce_id`` unique on every DocType the adapter creates? Creation is idempotent
only through that unique index (DESIGN.md, "The ERP side"): without it a lost answer or a
step run twice books a second order, so the adapter creates nothing until it is.

The answer is the ERP's field metadata: Frappe keeps a custom field as a ``Custom Field``
document (``dt``, ``fieldname``, ``unique``). A worker process asks at start
(``check_at_start``, on a thread of its own, which only logs); each create asks again unless
a good answer is younger than ``TRUST_S`` (``require``), so a worker that could not reach
the ERP at start, or found the field wrong, checks before its next create, and a dead
letter filed meanwhile replays once the ERP is fixed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from o2c_workers.catalogue import ERP_CONFIGURATION
from o2c_workers.errors import AuthError, BusinessError, O2CError

log = logging.getLogger("o2c.erp.unique")

FIELDNAME = "salesforce_id"
#: The DocTypes the adapter creates.
CREATED = ("Customer", "Sales Order")
#: How long a good answer is trusted before the next create asks again, in seconds.
TRUST_S = 600.0

#: ``(filters, fields) → rows`` of ``GET /api/resource/Custom Field``.
ReadFields = Callable[[list[list[Any]], Sequence[str]], list[dict[str, Any]]]


class UniqueIds:
    """The verdict on the unique ``salesforce_id`` fields, per DocType, asked for and cached."""

    def __init__(self, read: ReadFields, *, enabled: bool = True,
                 doctypes: Sequence[str] = CREATED, trust_s: float = TRUST_S) -> None:
        self._read = read
        self.enabled = enabled
        self.doctypes = tuple(doctypes)
        self.trust_s = trust_s
        #: DocType → monotonic time until which its field is known to be unique.
        self._good_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def require(self, doctype: str) -> None:
        """Return when ``doctype``'s field is unique; raise the ``erp_configuration``
        refusal (or the error of an ERP that cannot be asked) otherwise."""
        if not self.enabled or doctype not in self.doctypes or self._trusted(doctype):
            return
        with self._lock:
            if not self._trusted(doctype):
                self.check(doctype)

    def check(self, *doctypes: str) -> None:
        """Ask the ERP now about every DocType; raise for those named (all if none)."""
        try:
            rows = self._read([["dt", "in", list(self.doctypes)],
                               ["fieldname", "=", FIELDNAME]], ["name", "dt", "unique"])
        except AuthError as exc:
            if exc.status != 403:
                raise
            raise BusinessError(
                f"the ERP refused to show its Custom Field metadata (403), so the fleet "
                f"cannot tell that {FIELDNAME} is unique and creates nothing: "
                f"{exc.message}", reason="custom_field_forbidden", status=exc.status,
                category=ERP_CONFIGURATION) from exc
        problems = problems_of(rows, self.doctypes)
        until = time.monotonic() + self.trust_s
        self._good_until = {d: until for d in self.doctypes if d not in problems}
        wrong = [problem for doctype, problem in problems.items()
                 if doctype in (doctypes or self.doctypes)]
        if wrong:
            raise BusinessError(
                f"{'; '.join(wrong)}: without a unique {FIELDNAME} a retry or a repeated "
                "step could create a record twice, so the fleet creates none there until it "
                "is unique", reason="salesforce_id_not_unique", category=ERP_CONFIGURATION)

    def _trusted(self, doctype: str) -> bool:
        return time.monotonic() < self._good_until.get(doctype, 0.0)


class Checks(Protocol):
    def check_unique_ids(self) -> None: ...


def check_at_start(erp: Checks) -> None:
    """A worker's first look, which only logs: what is wrong, or that the ERP could not be
    asked (the next create asks again)."""
    try:
        erp.check_unique_ids()
    except BusinessError as exc:
        log.error("the ERP is not set up for idempotent creates: %s (%s)", exc.message,
                  exc.remediation, extra={"category": exc.category})
    except O2CError as exc:
        log.warning("could not check the ERP's unique %s fields at start (%s); each create "
                    "checks first", FIELDNAME, exc.reason)
    else:
        log.info("the ERP's %s is unique on %s", FIELDNAME, ", ".join(CREATED))


def problems_of(rows: list[dict[str, Any]], doctypes: Sequence[str]) -> dict[str, str]:
    """What is wrong, by DocType: no such Custom Field, or one that is not unique."""
    by_doctype = {str(row.get("dt")): row for row in rows}
    problems = {}
    for doctype in doctypes:
        row = by_doctype.get(doctype)
        if row is None:
            problems[doctype] = f"{doctype} has no {FIELDNAME} Custom Field"
        elif str(row.get("unique") or 0) not in ("1", "True", "true"):
            problems[doctype] = (f"{FIELDNAME} is not unique on {doctype} (Custom Field "
                                 f"{row.get('name')}: unique {row.get('unique') or 0})")
    return problems
