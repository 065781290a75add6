"""The context a won opportunity's chain carries from step to step: one typed, versioned
model, sent across the queue as JSON (``dump``) and rebuilt by each step (``load``).

The receiver (or a requeue) starts it with what the notification said; each step adds its
part: the opportunity as Salesforce holds it (read once, by the first step, for the next),
the ERP customer, the priced order (and when it was priced), the booked ERP order. A
message written before the schema had a version is version 1 and reads the same way; fields
added since are optional, so older messages of version 2 read too.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from o2c_workers.errors import InvalidPayload
from o2c_workers.models import ErpCustomer, ErpOrder, OrderData

#: The schema this code writes. Version 1 had no ``schema`` field; nothing else changed.
SCHEMA = 2


class Pricing(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tax_rate: Decimal
    net_total: Decimal
    expected_grand_total: Decimal
    #: When the opportunity was read and priced (epoch s); a step that books from an older
    #: pricing reads it again first. Absent (written before it existed): read again.
    priced_at: float | None = None


class OpportunityRead(BaseModel):
    """An opportunity, its account and its product lines as one query read them at
    ``read_at`` (epoch s): field names as in Salesforce, no ``attributes``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    opportunity: dict[str, Any]
    #: Null when the opportunity has no account (or the integration user cannot see it),
    #: and in the chain's context: the first step makes it the ERP customer.
    account: dict[str, Any] | None = None
    lines: list[dict[str, Any]] = Field(default_factory=list)
    read_at: float

    def fresh(self, now: float, *, max_age_s: float) -> bool:
        return self.read_at >= now - max_age_s


class ChainContext(BaseModel):
    """Everything a step of the chain may read; later steps' parts are None until made."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = Field(default=1, alias="schema")
    trace_key: str
    notification_id: str | None = None
    organization_id: str | None = None
    action_id: str | None = None
    sobject_type: str | None = None
    route: str | None = None
    received_at: float | None = None
    #: The Salesforce record as the notification carried it (what was validated).
    record: dict[str, Any] = Field(default_factory=dict)
    #: What the first step read, for the pricing step; consumed there (None after it).
    opportunity: OpportunityRead | None = None
    account_id: str | None = None
    customer: ErpCustomer | None = None
    order: OrderData | None = None
    pricing: Pricing | None = None
    erp_order: ErpOrder | None = None

    @classmethod
    def load(cls, payload: Any) -> ChainContext:
        """The context of a message; one that does not validate (a bad edit) is refused."""
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise InvalidPayload(f"the chain's context does not validate: "
                                 f"{exc.error_count()} error(s): {exc.errors()[0]['msg']} at "
                                 f"{'.'.join(map(str, exc.errors()[0]['loc']))}") from None

    def dump(self) -> dict[str, Any]:
        """JSON for the queue, always in the current schema."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["schema"] = SCHEMA
        return data

    def need_customer(self) -> ErpCustomer:
        if self.customer is None:
            raise InvalidPayload(f"{self.trace_key}: the chain has no ERP customer yet")
        return self.customer

    def need_order(self) -> OrderData:
        if self.order is None:
            raise InvalidPayload(f"{self.trace_key}: the chain has no priced order yet")
        return self.order

    def need_erp_order(self) -> ErpOrder:
        if self.erp_order is None:
            raise InvalidPayload(f"{self.trace_key}: the chain has no ERP order yet")
        return self.erp_order
