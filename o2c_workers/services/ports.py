"""What the services need from Salesforce (the ERP side is ``o2c_workers.erp.protocol``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from o2c_workers.erp.protocol import ErpAdapter
from o2c_workers.salesforce.errors import RecordResult
from o2c_workers.writeback.model import Write

__all__ = ["ErpAdapter", "SalesforceApi", "StatusWrites", "Write"]


class SalesforceApi(Protocol):
    def get_opportunity(self, opportunity_id: str) -> dict[str, Any]: ...

    def get_account(self, account_id: str) -> dict[str, Any]: ...

    def get_line_items(self, opportunity_id: str) -> list[dict[str, Any]]: ...

    def query_records(self, soql: str, *,
                      children: Sequence[str] = ()) -> list[dict[str, Any]]: ...

    def update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None: ...

    def update_many(self, changes: list[tuple[str, str, dict[str, Any]]]) -> None: ...

    def update_each(self, records: Sequence[tuple[str, str, dict[str, Any]]]
                    ) -> list[RecordResult]: ...


class StatusWrites(Protocol):
    """Where status write-backs go: the outbox (``o2c_workers.writeback.Outbox``), which
    coalesces them per record and sends them in batches."""

    def accept(self, writes: Sequence[Write]) -> int: ...
