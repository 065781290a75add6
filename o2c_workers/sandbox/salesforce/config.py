"""What the Salesforce simulator is told: credentials, limits and the outbound messaging knobs."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Fields an outbound message carries per object type (Salesforce sends ``Id`` first).
DEFAULT_OUTBOUND_FIELDS: dict[str, tuple[str, ...]] = {
    "Opportunity": (
        "Id", "AccountId", "Amount", "CloseDate", "CurrencyIsoCode", "Description", "IsWon",
        "LastModifiedDate", "Name", "Pricebook2Id", "Probability", "StageName",
        "ERP_Order_Number__c",
    ),
    "Account": (
        "Id", "AccountNumber", "BillingCity", "BillingCountry", "BillingPostalCode",
        "BillingStreet", "CurrencyIsoCode", "LastModifiedDate", "Name", "Phone", "Website",
    ),
}
#: Fields an upsert may match on, per object type (Salesforce's "External ID" fields).
DEFAULT_EXTERNAL_IDS: dict[str, tuple[str, ...]] = {
    "Account": ("Id", "AccountNumber", "ERP_Customer_Number__c"),
    "Opportunity": ("Id", "ERP_Order_Number__c"),
    "Product2": ("Id", "ProductCode"),
    "Contact": ("Id", "Email"),
}
#: Salesforce's production and sandbox login hosts, accepted as a JWT audience.
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


@dataclass
class SalesforceConfig:
    """Settings of one simulated org. Durations are in real seconds unless scaled below."""

    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"  # noqa: S105 - a sandbox default
    #: The integration user a token is issued for (the JWT ``sub`` must name it).
    username: str = "integration@o2c.sandbox"
    #: PEM public key the JWT-bearer assertions are verified with; None refuses that grant.
    jwt_public_key: str | None = None
    org_id: str | None = None
    api_version: str = "60.0"
    #: Where outbound messages go; may hold ``?token=`` or ``user:pass@``. None queues only.
    outbound_url: str | None = None
    #: Send a live session id in outbound messages instead of ``xsi:nil``.
    send_session_id: bool = False
    token_lifetime_s: float = 7200.0
    #: REST calls allowed per (scaled) day before 403 REQUEST_LIMIT_EXCEEDED.
    daily_api_requests: int = 100_000
    #: Records per page of a query answer (Salesforce's default and largest batch is 2000;
    #: a ``Sforce-Query-Options: batchSize=n`` header asks for 200 to 2000).
    query_batch_size: int = 2000
    #: Child records per page of a subquery's result (``(SELECT ... FROM
    #: OpportunityLineItems)``): beyond it the child result says ``done: false`` and carries
    #: its own ``nextRecordsUrl``, as Salesforce does past a couple of hundred child rows.
    child_batch_size: int = 200
    #: Sandbox seconds per real second for retry intervals, the 24 h window and the API day.
    time_scale: float = 1.0
    #: Share of acknowledged notifications delivered once more.
    duplicate_rate: float = 0.0
    #: Deliver due notifications in a shuffled order rather than oldest first.
    reorder: bool = False
    #: Notifications per SOAP message (Salesforce sends at most 100).
    batch_size: int = 100
    pretty: bool = False
    #: First retry interval and its cap, in sandbox seconds (Salesforce caps at 2 hours).
    retry_base_s: float = 15.0
    retry_cap_s: float = 7200.0
    #: A notification older than this (sandbox seconds) is dropped unacknowledged.
    retry_window_s: float = 86_400.0
    #: How long the sender waits for the endpoint's answer, real seconds.
    outbound_timeout_s: float = 60.0
    #: TLS verification of the endpoint: True, False or a CA bundle path.
    outbound_verify: bool | str = True
    #: How often the sender looks for due notifications, real seconds.
    sender_tick_s: float = 0.02
    outbound_fields: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_OUTBOUND_FIELDS))
    external_ids: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_EXTERNAL_IDS))
    #: Serve HTTPS with a generated certificate (simple-salesforce only speaks https).
    tls: bool = True
    #: Where the certificate and key are written; a temporary directory when None.
    state_dir: str | None = None
    seed: int = 7

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if self.query_batch_size < 1:
            raise ValueError("query_batch_size must be positive")
        if self.child_batch_size < 1:
            raise ValueError("child_batch_size must be positive")
        if not 1 <= self.batch_size <= 100:
            raise ValueError("batch_size must be between 1 and 100 (Salesforce's maximum)")

    def scaled(self, sandbox_s: float) -> float:
        """Real seconds for a duration in sandbox seconds."""
        return sandbox_s / self.time_scale
