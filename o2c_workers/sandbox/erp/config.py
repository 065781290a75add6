"""How the ERP simulator is set up: credentials, lifecycle timing, and the faults it injects."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class Faults(BaseModel):
    """Faults injected into ``/api`` calls; settable at start and live (``/_sandbox/faults``).

    Every rate is a probability per call in [0, 1]. ``None`` switches a limit off.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    #: Added to every accepted call, in milliseconds.
    latency_ms: float = Field(default=0.0, ge=0, le=120_000)
    #: Uniform extra latency in [0, jitter], in milliseconds.
    latency_jitter_ms: float = Field(default=0.0, ge=0, le=120_000)
    #: Share of accepted calls answered with ``error_status`` before anything is done.
    error_rate: float = Field(default=0.0, ge=0, le=1)
    #: The 5xx status an injected error answers with.
    error_status: int = Field(default=500, ge=500, le=599)
    #: Accepted calls allowed in any sliding 1-second window; the rest get 429.
    rate_limit_per_s: float | None = Field(default=None, gt=0)
    #: Calls allowed in flight at once; the rest get 429.
    concurrency_limit: int | None = Field(default=None, ge=1)
    #: Share of successful POST/PUT calls whose answer is lost after the commit.
    timeout_after_commit_rate: float = Field(default=0.0, ge=0, le=1)
    #: How long a lost answer hangs before the connection is dropped, in seconds.
    timeout_hang_s: float = Field(default=15.0, ge=0, le=600)
    #: Start a maintenance window of this many seconds now (503 + Retry-After); 0 ends it.
    maintenance_for_s: float | None = Field(default=None, ge=0, le=86_400)


def _default_faults() -> Faults:
    return Faults()


@dataclass
class ErpConfig:
    """Credentials, webhook target and lifecycle timing of one simulated ERP."""

    api_key: str = "sandbox-key"
    api_secret: str = "sandbox-secret"  # noqa: S105 (sandbox default)
    #: Where document events are POSTed; ``None`` keeps them in the record only.
    webhook_url: str | None = None
    webhook_secret: str = "sandbox-webhook-secret"  # noqa: S105
    #: The site's time zone (an IANA name): ``creation`` and ``modified`` are written in it,
    #: without an offset, as Frappe writes them.
    time_zone: str = "UTC"
    #: Seconds from a submitted Sales Order to its Sales Invoice.
    invoice_delay_s: float = 2.0
    #: Seconds from a submitted Sales Invoice to its Payment Entry.
    payment_delay_s: float = 2.0
    #: Share of invoices paid only in part.
    partial_payment_ratio: float = 0.1
    #: Share of invoices never paid.
    unpaid_ratio: float = 0.05
    #: Seeds every random choice (payments, injected faults, generated names).
    seed: int = 7
    #: A ``Faults`` or a dict of its fields.
    faults: Faults = field(default_factory=_default_faults)
    #: First wait before a failed webhook delivery is tried again, in seconds.
    webhook_retry_base_s: float = 0.5
    #: Longest wait between webhook delivery attempts, in seconds.
    webhook_retry_cap_s: float = 30.0
    #: Attempts per webhook before it is given up (recorded as failed).
    webhook_max_attempts: int = 50
    #: Timeout of one webhook POST, in seconds.
    webhook_timeout_s: float = 5.0
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = 1_048_576
    #: DocTypes whose ``salesforce_id`` Custom Field is not unique (an ERP set up wrong):
    #: their ``Custom Field`` says ``unique: 0`` and they take duplicates.
    non_unique_salesforce_id: tuple[str, ...] = ()
    #: Decimal places of item rates. Stock ERPNext rounds rates to the currency's 2; an
    #: ERPNext set up for this integration keeps 6 (Customize Form, Sales Order Item rate),
    #: so that a discounted unit rate and Salesforce's line total agree to the cent.
    rate_precision: int = 6

    def __post_init__(self) -> None:
        if isinstance(self.faults, dict):
            self.faults = Faults.model_validate(self.faults)
