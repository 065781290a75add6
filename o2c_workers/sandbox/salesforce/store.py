"""The simulated org's records in memory, with Salesforce's field rules and error shapes.

As in Salesforce, a product line's ``TotalPrice`` is computed (``Quantity`` x ``UnitPrice``
less ``Discount``, to the cent), and saving a line rolls its opportunity's ``Amount`` and
``TotalOpportunityQuantity`` up: the opportunity is saved too, and its listeners hear it.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from o2c_workers import sfid
from o2c_workers.sandbox.world import Record, line_total

#: Key prefix of each object type's ids.
KEY_PREFIXES = {
    "Account": "001", "Contact": "003", "Opportunity": "006", "OpportunityLineItem": "00k",
    "Product2": "01t", "PricebookEntry": "01u", "Pricebook2": "01s",
}
#: Fields no API call may write.
READ_ONLY = frozenset({"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted",
                       "IsWon", "IsClosed", "TotalPrice", "HasOpportunityLineItem"})
REQUIRED = {"Account": ("Name",), "Contact": ("LastName",),
            "Opportunity": ("Name", "StageName", "CloseDate")}
#: Fields every org's objects have even if the seed leaves them out.
_WRITE_BACK = {
    "Opportunity": ("ERP_Order_Number__c", "ERP_Order_Status__c", "Invoice_Status__c",
                    "Payment_Status__c"),
    "Account": ("ERP_Customer_Number__c",),
}
_STAGE_EFFECTS = {"Closed Won": (True, True, Decimal(100)),
                  "Closed Lost": (True, False, Decimal(0))}
#: The fields of a product line its TotalPrice is computed from.
_PRICED = ("Quantity", "UnitPrice", "Discount")
#: Opportunity field → the line field it sums (Salesforce's roll-up of products).
_ROLL_UP = {"Amount": "TotalPrice", "TotalOpportunityQuantity": "Quantity"}

Listener = Callable[[str, Record | None, Record], None]


class SObjectError(Exception):
    """A refusal in Salesforce's shape: HTTP status, errorCode, message, fields."""

    def __init__(self, status: int, code: str, message: str,
                 fields: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, list(fields)

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "errorCode": self.code, "fields": self.fields}


def not_found() -> SObjectError:
    return SObjectError(404, "NOT_FOUND", "The requested resource does not exist")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Store:
    """Records by type and 15-character id, one lock, listeners called on every save."""

    def __init__(self, records: dict[str, list[Record]]) -> None:
        self.lock = threading.RLock()
        self.listeners: list[Listener] = []
        self._records: dict[str, dict[str, Record]] = {}
        self._kinds: dict[str, dict[str, type]] = {}
        self._counter = 0
        #: Deleted records by type, 15-character ids (Salesforce's recycle bin).
        self._deleted: dict[str, set[str]] = {}
        #: Validation rules: (type, 15-character id) → the message every save is refused with.
        self.rules: dict[tuple[str, str], str] = {}
        self._loaded = sorted(records)
        for sobject, rows in records.items():
            self._load(sobject, rows)
        for sobject, names in _WRITE_BACK.items():
            kinds = self._kinds.setdefault(sobject, {"Id": str})
            for name in names:
                kinds.setdefault(name, str)

    def _load(self, sobject: str, rows: list[Record]) -> None:
        kinds = self._kinds.setdefault(sobject, {"Id": str})
        for row in rows:
            for name, value in row.items():
                if value is not None and kinds.get(name) in (None, type(None)):
                    kinds[name] = type(value)
                else:
                    kinds.setdefault(name, type(None))
        for name, kind in kinds.items():
            if kind is type(None):
                kinds[name] = str
        self._records[sobject] = {sfid.to15(row["Id"]): copy.deepcopy(row) for row in rows}

    def types(self) -> list[str]:
        """The object types the org was loaded with."""
        return list(self._loaded)

    def has_type(self, sobject: str) -> bool:
        return sobject in self._kinds

    def fields(self, sobject: str) -> list[str]:
        return list(self._kinds[sobject])

    def check_fields(self, sobject: str, names: Iterable[str]) -> None:
        for name in names:
            if name not in self._kinds[sobject]:
                raise SObjectError(400, "INVALID_FIELD",
                                   f"No such column '{name}' on sobject of type {sobject}",
                                   [name])

    def get(self, sobject: str, record_id: str) -> Record:
        with self.lock:
            row = self._row(sobject, record_id)
            return {name: row.get(name) for name in self._kinds[sobject]}

    def all(self, sobject: str, *, ids: Collection[str] | None = None) -> list[Record]:
        """Every record of ``sobject`` in the order saved; with ``ids`` (15-character
        keys), only those, still in that order."""
        with self.lock:
            keys = self._records.get(sobject, {})
            if ids is not None:
                wanted = set(ids)
                return [self.get(sobject, key) for key in keys if key in wanted]
            return [self.get(sobject, key) for key in keys]

    def where(self, sobject: str, name: str, value: Any) -> list[str]:
        """Ids of the records whose field equals ``value`` (ids compared in either form)."""
        with self.lock:
            rows = self._records.get(sobject, {}).values()
            if name == "Id" or name.endswith("Id"):
                return [r["Id"] for r in rows
                        if isinstance(r.get(name), str) and sfid.same(r[name], str(value))]
            return [r["Id"] for r in rows if r.get(name) is not None
                    and str(r[name]) == str(value)]

    def _row(self, sobject: str, record_id: str) -> Record:
        if len(record_id) not in (15, 18):
            raise not_found()
        if record_id[:15] in self._deleted.get(sobject, ()):
            raise SObjectError(404, "ENTITY_IS_DELETED", "entity is deleted")
        row = self._records.get(sobject, {}).get(record_id[:15])
        if row is None:
            raise not_found()
        return row

    def delete(self, sobject: str, record_id: str) -> None:
        """Move a record to the recycle bin: reads answer 404, writes ``ENTITY_IS_DELETED``."""
        with self.lock:
            row = self._row(sobject, record_id)
            self._records[sobject].pop(sfid.to15(row["Id"]))
            self._deleted.setdefault(sobject, set()).add(sfid.to15(row["Id"]))

    def _check_rules(self, sobject: str, record_id: str) -> None:
        message = self.rules.get((sobject, record_id[:15]))
        if message is not None:
            raise SObjectError(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", message)

    def prepare(self, sobject: str, record_id: str | None, values: Record) -> tuple[
            Record | None, Record]:
        """The record before and after applying ``values``, checked but not saved."""
        self.check_fields(sobject, values)
        blocked = sorted(set(values) & READ_ONLY)
        if blocked:
            raise SObjectError(
                400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(blocked)}. Please check the "
                "security settings of this field and verify that it is read/write for your "
                "profile or permission set.", blocked)
        coerced = {name: self._coerce(sobject, name, value) for name, value in values.items()}
        stamp = now()
        if record_id is None:
            before = None
            after: Record = {name: None for name in self._kinds[sobject]}
            after.update(coerced, Id=self._new_id(sobject), CreatedDate=stamp)
            missing = [n for n in REQUIRED.get(sobject, ()) if after.get(n) in (None, "")]
            if missing:
                raise SObjectError(400, "REQUIRED_FIELD_MISSING",
                                   f"Required fields are missing: [{', '.join(missing)}]",
                                   missing)
        else:
            before = copy.deepcopy(self._row(sobject, record_id))
            self._check_rules(sobject, record_id)
            after = {**before, **coerced}
        after["LastModifiedDate"] = stamp
        if sobject == "OpportunityLineItem" and set(coerced) & set(_PRICED):
            after["TotalPrice"] = line_total(*(_decimal(after.get(f)) for f in _PRICED))
        if sobject == "Opportunity" and "StageName" in coerced:
            closed, won, probability = _STAGE_EFFECTS.get(
                str(after["StageName"]), (False, False, after.get("Probability")))
            after.update(IsClosed=closed, IsWon=won, Probability=probability)
        return before, after

    def commit(self, sobject: str, before: Record | None, after: Record, *,
               roll_up: bool = True) -> None:
        self._records.setdefault(sobject, {})[sfid.to15(after["Id"])] = after
        for listener in self.listeners:
            listener(sobject, before, copy.deepcopy(after))
        if roll_up and sobject == "OpportunityLineItem" and after.get("OpportunityId"):
            self._roll_up(str(after["OpportunityId"]))

    def save_lines(self, changes: list[tuple[str, Record]]) -> list[Record]:
        """Update several product lines in one save, as the UI's "Edit Products" does: all
        checked first, then saved, then each opportunity rolled up once."""
        with self.lock:
            prepared = [self.prepare("OpportunityLineItem", line_id, values)
                        for line_id, values in changes]
            for before, after in prepared:
                self.commit("OpportunityLineItem", before, after, roll_up=False)
            for parent in sorted({str(after["OpportunityId"]) for _, after in prepared}):
                self._roll_up(parent)
            return [after for _, after in prepared]

    def _roll_up(self, opportunity_id: str) -> None:
        """Sum the opportunity's lines into it; saved (and heard) only when it changes."""
        lines = [r for r in self._records.get("OpportunityLineItem", {}).values()
                 if sfid.same(str(r.get("OpportunityId") or ""), opportunity_id)]
        try:
            before = copy.deepcopy(self._row("Opportunity", opportunity_id))
        except SObjectError:
            return
        sums = {name: sum((_decimal(line.get(field)) for line in lines), Decimal(0))
                for name, field in _ROLL_UP.items() if name in self._kinds["Opportunity"]}
        changes = {name: value for name, value in sums.items() if before.get(name) != value}
        if changes:
            self.commit("Opportunity", before, {**before, **changes, "LastModifiedDate": now()})

    def save(self, sobject: str, record_id: str | None, values: Record) -> Record:
        """Create (``record_id`` None) or update one record; answer the saved record."""
        with self.lock:
            before, after = self.prepare(sobject, record_id, values)
            self.commit(sobject, before, after)
            return after

    def _new_id(self, sobject: str) -> str:
        self._counter += 1
        prefix = KEY_PREFIXES.get(sobject, "a00")
        return sfid.to18(f"{prefix}9S0{self._counter:09d}")

    def _coerce(self, sobject: str, name: str, value: Any) -> Any:
        kind = self._kinds[sobject].get(name, str)
        if value is None:
            return None
        try:
            if kind in (Decimal, int) and isinstance(value, int | float | Decimal | str) \
                    and not isinstance(value, bool):
                number = Decimal(str(value))
                if kind is int and number == number.to_integral_value():
                    return int(number)
                return number
            if kind is date and isinstance(value, str):
                return date.fromisoformat(value)
            if kind is datetime and isinstance(value, str):
                return datetime.fromisoformat(value.replace("+0000", "+00:00"))
        except (ValueError, InvalidOperation) as exc:
            raise SObjectError(400, "JSON_PARSER_ERROR",
                               f"Cannot deserialize instance of {kind.__name__} from "
                               f"VALUE_STRING value {value}", [name]) from exc
        if kind is bool and not isinstance(value, bool):
            raise SObjectError(400, "JSON_PARSER_ERROR",
                               f"Cannot deserialize instance of boolean from value {value}",
                               [name])
        return value


def _decimal(value: Any) -> Decimal:
    return Decimal(0) if value in (None, "") else Decimal(str(value))
