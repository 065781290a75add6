"""What a Salesforce user does to an opportunity after it is won: lose it, re-open it, edit
its product lines. Each is a save in the store, as in the UI, so the org's outbound rule
(``simulator.opportunity_rule``) hears it as it hears a REST API change.

The control routes (``control.py``) call these; ``make chaos`` and the tests use them to
play the opportunity's life.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from o2c_workers.sandbox.salesforce.store import SObjectError, Store
from o2c_workers.sandbox.world import OPEN_STAGES, Record

LOST = "Closed Lost"
#: The stage a re-opened opportunity goes back to unless another is named.
REOPENED = "Negotiation/Review"
#: The fields of a product line a user edits here.
LINE_FIELDS = ("Quantity", "Discount", "UnitPrice")


def set_stage(store: Store, opportunity_id: str, stage: str) -> dict[str, Any]:
    """Move the opportunity to ``stage``; answer its id and the stage before and after."""
    with store.lock:
        before = store.get("Opportunity", opportunity_id)
        saved = store.save("Opportunity", before["Id"], {"StageName": stage})
    return {"id": saved["Id"], "before": before["StageName"], "stage": saved["StageName"]}


def reopen(store: Store, opportunity_id: str, stage: str | None) -> dict[str, Any]:
    stage = stage or REOPENED
    if stage not in OPEN_STAGES:
        raise SObjectError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                           f"an open stage, one of {', '.join(OPEN_STAGES)}: {stage!r}",
                           ["StageName"])
    return set_stage(store, opportunity_id, stage)


def lines_of(store: Store, opportunity_id: str) -> list[Record]:
    """The opportunity's product lines in their order (``SortOrder``, then creation)."""
    lines = [store.get("OpportunityLineItem", line_id)
             for line_id in store.where("OpportunityLineItem", "OpportunityId", opportunity_id)]
    return sorted(lines, key=lambda line: (line.get("SortOrder") is None,
                                           line.get("SortOrder") or 0))


def edit_lines(store: Store, opportunity_id: str, body: Any) -> dict[str, Any]:
    """Apply ``[{"line": 1, "Quantity": 25, "Discount": 24}, ...]`` in one save.

    ``line`` is the line's position (from 1) or its Id; the other keys are ``LINE_FIELDS``.
    Nothing changes when any entry is wrong.
    """
    if not isinstance(body, list) or not body:
        raise SObjectError(400, "JSON_PARSER_ERROR",
                           'send [{"line": 1, "Quantity": 25, "Discount": 24}, ...]')
    with store.lock:
        opportunity = store.get("Opportunity", opportunity_id)
        lines = lines_of(store, opportunity["Id"])
        changes = [_change(lines, entry) for entry in body]
        saved = store.save_lines(changes)
        after = store.get("Opportunity", opportunity["Id"])
    return {"id": after["Id"], "Amount": after.get("Amount"),
            "TotalOpportunityQuantity": after.get("TotalOpportunityQuantity"),
            "lines": [{k: line.get(k) for k in ("Id", *LINE_FIELDS, "TotalPrice")}
                      for line in saved]}


def _change(lines: list[Record], entry: Any) -> tuple[str, Record]:
    if not isinstance(entry, dict) or "line" not in entry:
        raise SObjectError(400, "JSON_PARSER_ERROR", f"each change names its line: {entry!r}")
    values = {k: v for k, v in entry.items() if k != "line"}
    unknown = sorted(set(values) - set(LINE_FIELDS))
    if unknown or not values:
        raise SObjectError(400, "INVALID_FIELD", f"a line edit sets {', '.join(LINE_FIELDS)}",
                           unknown)
    for name, value in values.items():
        _check_number(name, value)
    return _line_id(lines, entry["line"]), values


def _line_id(lines: list[Record], line: Any) -> str:
    if isinstance(line, int) and not isinstance(line, bool) and 1 <= line <= len(lines):
        return str(lines[line - 1]["Id"])
    for record in lines:
        if isinstance(line, str) and record["Id"][:15] == line[:15]:
            return str(record["Id"])
    raise SObjectError(404, "NOT_FOUND", f"the opportunity has no line {line!r} "
                                         f"(1 to {len(lines)}, or a line Id)")


def _check_number(name: str, value: Any) -> None:
    if name == "Discount" and value is None:
        return
    try:
        number = None if value is None else Decimal(str(value))
    except InvalidOperation:
        number = None
    if isinstance(value, bool) or number is None or not number.is_finite() or number < 0 \
            or (name == "Discount" and number > 100) or (name == "Quantity" and number == 0):
        raise SObjectError(400, "NUMBER_OUTSIDE_VALID_RANGE", f"{name}: {value!r}", [name])
