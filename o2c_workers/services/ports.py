"""What the services need from Salesforce (the ERP side is ``o2c_workers.erp.protocol``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from o2c_workers.erp.protocol import ErpAdapter

__all__ = ["ErpAdapter", "SalesforceApi"]


class SalesforceApi(Protocol):
    def get_opportunity(self, opportunity_id: str) -> dict[str, Any]: ...

    def get_account(self, account_id: str) -> dict[str, Any]: ...

    def get_line_items(self, opportunity_id: str) -> list[dict[str, Any]]: ...

    def query_records(self, soql: str, *,
                      children: Sequence[str] = ()) -> list[dict[str, Any]]: ...

    def update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None: ...

    def update_many(self, changes: list[tuple[str, str, dict[str, Any]]]) -> None: ...
