"""The one settings object, read from ``O2C_*`` environment variables."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config.broker import BrokerRefused, broker_kind, check_broker
from o2c_workers.catalogue import UNEXPECTED
from o2c_workers.errors import O2CError

ENV_PREFIX = "O2C_"


class ConfigError(O2CError, RuntimeError):
    """A setting is missing or invalid; the message names the environment variable."""

    category = UNEXPECTED


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every knob of the fleet, the receiver and the clients."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # --- Redis and the broker -------------------------------------------------------------
    #: A Redis server (``redis://``, ``rediss://``, ``unix://``), or the master Redis Sentinel
    #: names: ``sentinel://[:password@]host:26379[,host:26379...][/db]?master=NAME``
    #: (``&sentinel_password=`` when the sentinels ask for one); see o2c_workers.redis_urls.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: The Celery broker; unset, it is ``redis_url``. A Redis broker must be that same Redis
    #: server and database (the receiver writes the dedupe mark and the task message in one
    #: script); RabbitMQ (``amqp://``, ``amqps://``) is the other broker served, with the state
    #: kept on ``redis_url``. Anything else is refused at start (``config.broker``).
    broker_url: str | None = None
    #: Prefix of every key the project writes (see ``o2c_workers.keys``).
    key_prefix: str = "o2c"
    #: The fleet's own Redis transport (atomic take-and-hold, heartbeats, delayed retries
    #: parked in Redis). ``false`` falls back to kombu's stock transport, whose held work
    #: comes back only after the visibility timeout and which can lose a message on a
    #: connection reset (see docs/architecture.md).
    reliable_delivery: bool = True
    #: What a dead consumer (a SIGKILLed node) held is back on its queue within this long.
    redelivery_after_s: int = Field(default=30, ge=3)
    #: With ``O2C_RELIABLE_DELIVERY=false`` only: kombu re-delivers an unacked message after
    #: this long; it must exceed the longest countdown or ETA (kombu #337).
    visibility_timeout_s: int = 3600
    #: The longest countdown any retry may ask for; longer waits are parked in Redis.
    max_countdown_s: int = 900
    #: RabbitMQ only: how long a publish of the fleet's own (the receiver, the sweeps, the
    #: dead-letter requeue, the repairs) waits for the broker's confirms before it counts as
    #: failed: the receiver then answers 503 and the sender resends. The receiver's answer
    #: waits on it, so keep it well under Salesforce's 60 s for an answer.
    amqp_confirm_timeout_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    #: RabbitMQ only: a publisher connection idle longer than this is closed rather than
    #: reused. It sends no heartbeats, so keep it under the idle timeout of any load balancer
    #: or NAT between the fleet and RabbitMQ (a dropped connection costs a confirm timeout).
    amqp_idle_limit_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    #: A message whose runs died with their process this many times in a row (a poison
    #: message: SIGKILL, out of memory, a native crash) is dead-lettered ``worker_lost``
    #: rather than handed back once more.
    max_worker_lost: int = Field(default=3, ge=1)

    #: Celery-level retries of a step: attempts in all, backoff base and cap.
    retry_max_attempts: int = 8
    retry_base_s: float = 2.0
    retry_cap_s: float = 300.0
    #: A step held back by a far side (the ERP limiter, a 429) waits without spending an
    #: attempt; past this long in all it is dead-lettered ``throttled`` instead.
    max_wait_h: int = Field(default=24, ge=1)

    # --- The receiver ---------------------------------------------------------------------
    webhook_token: SecretStr | None = None
    salesforce_org_ids: CsvList = Field(default_factory=list)
    max_body_bytes: int = 1024 * 1024
    #: Longer than Salesforce's 24 h of retries, so a late resend is still recognised.
    dedupe_ttl_h: int = 48
    #: Replicas that must confirm (Redis ``WAIT``) a notification's enqueue before the
    #: receiver acknowledges it; too few in time and it answers 503, so the sender resends.
    #: 0 waits for none: the primary's copy (and its AOF) is all (README, Durability).
    enqueue_min_replicas: int = Field(default=0, ge=0)
    #: How long the receiver waits for those replicas. Below the receiver's Redis socket
    #: timeout (5 s), and far below Salesforce's 60 s for an answer.
    enqueue_replica_timeout_ms: int = Field(default=1000, ge=1, le=4000)
    #: Bearer token of the ``/admin/dlq`` API; unset, the API answers 404.
    admin_token: SecretStr | None = None
    erp_webhook_secret: SecretStr | None = None

    # --- Transactions ---------------------------------------------------------------------
    #: A transaction in flight with no timeline event for this long, and no open dead
    #: letter, counts as stalled (``o2c report --stalled``, ``o2c_stalled_transactions``).
    stall_after_s: int = Field(default=300, ge=1)

    # --- Sweeps (what the webhooks missed) ------------------------------------------------
    #: How often the beat process starts the Salesforce sweep and the stall re-drive.
    sweep_interval_s: int = Field(default=300, ge=1)
    #: Each sweep reads from this far before its watermark, so a record committed late or
    #: stamped by a clock behind ours is still seen (the dedupe absorbs the repeats).
    sweep_overlap_s: int = Field(default=120, ge=0)
    #: With no watermark yet (the first sweep ever) the sweep starts this far back; older
    #: records are for ``o2c resync --since``.
    sweep_first_lookback_h: int = Field(default=24, ge=0)
    #: Sweep accounts changed since the watermark too (one customer sync each).
    sweep_accounts: bool = True
    #: How often the beat process starts the ERP change feed (invoices, payments, order
    #: status changes modified since its watermark); the only path of an ERP without
    #: webhooks, where a shorter interval is the latency of every write-back.
    erp_feed_interval_s: int = Field(default=300, ge=1)
    #: Each poll reads from this far before the feed's watermark (late commits, an ERP
    #: clock behind ours); the dedupe absorbs the repeats.
    erp_feed_overlap_s: int = Field(default=120, ge=0)
    #: Documents asked for per ERP call (one page).
    erp_feed_page_size: int = Field(default=500, ge=1, le=5000)

    # --- Dead-letter queue ----------------------------------------------------------------
    #: How long a closed (requeued, resolved, purged) dead letter is kept; open ones stay.
    dlq_retention_d: int = Field(default=30, ge=1)

    # --- ERP (Frappe/ERPNext REST) --------------------------------------------------------
    erp_base_url: str = "http://127.0.0.1:8100"
    erp_api_key: SecretStr | None = None
    erp_api_secret: SecretStr | None = None
    erp_connect_timeout_s: float = 3.05
    erp_timeout_s: float = 10.0
    #: Fleet-wide request rate, in ``limits`` notation (``20/second``); empty means unlimited.
    erp_rate_limit: str | None = None
    #: Fleet-wide requests in flight; 0 means unlimited.
    erp_max_concurrency: int = 0
    #: How much longer than the ERP's window the limiter's window is: it must exceed the
    #: spread of delays between taking a slot and the request reaching the ERP.
    erp_rate_margin_s: float = 0.05
    #: Check, at worker start and before creating, that ``salesforce_id`` is a unique field
    #: of Customer and Sales Order in the ERP (its Custom Field metadata), and create
    #: nothing where it is not. ``false`` skips the check: the unique index is then yours
    #: to vouch for (an integration user that may not read Custom Field, say).
    erp_check_unique_ids: bool = True
    #: The ERP site's time zone (ERPNext: System Settings), an IANA name: ``modified``
    #: comes without an offset, in it.
    erp_time_zone: str = "UTC"

    #: How long ERP master data (items, item prices, price lists, tax rules and templates,
    #: the account-to-customer mapping) is served from the state Redis, at most, in seconds.
    #: The change feed drops an entry sooner when the ERP changes its document; 0 turns the
    #: cache off (every check asks the ERP).
    erp_cache_ttl_s: int = Field(default=900, ge=0)

    # --- Salesforce -----------------------------------------------------------------------
    salesforce_instance_url: str = "https://127.0.0.1:8200"
    #: Where tokens are requested; defaults to the instance URL (use
    #: https://login.salesforce.com or https://test.salesforce.com for a real org).
    salesforce_login_url: str | None = None
    salesforce_api_version: str = "60.0"
    salesforce_client_id: str | None = None
    #: Set for the client-credentials grant; otherwise the JWT-bearer grant is used.
    salesforce_client_secret: SecretStr | None = None
    #: JWT bearer: the integration user and the PEM private key of the connected app.
    salesforce_username: str | None = None
    salesforce_private_key_file: str | None = None
    #: A CA bundle to trust for Salesforce (the sandbox's self-signed certificate).
    salesforce_ca_bundle: str | None = None
    salesforce_timeout_s: float = 10.0
    #: Write-back fields (API names) on Account and Opportunity.
    sf_field_customer_number: str = "ERP_Customer_Number__c"
    sf_field_order_number: str = "ERP_Order_Number__c"
    sf_field_order_status: str = "ERP_Order_Status__c"
    sf_field_invoice_status: str = "Invoice_Status__c"
    sf_field_payment_status: str = "Payment_Status__c"
    #: Status write-backs wait in the outbox at most this long after the first accepted
    #: write of a record, then go out together in ``composite/sobjects`` calls of up to 200
    #: records (``o2c_workers.writeback``): a longer wait batches more, a shorter one shows
    #: Salesforce users the ERP's status sooner.
    sf_flush_s: float = Field(default=2.0, gt=0, le=300)

    # --- Pricing policy -------------------------------------------------------------------
    #: The largest line discount (percent) accepted without a manual approval.
    max_discount_percent: Decimal = Decimal("30")

    # --- The opportunity's life -----------------------------------------------------------
    #: An opportunity lost or re-opened after booking cancels its ERP order while nothing
    #: is invoiced or delivered (the compensating action). ``false`` leaves the order for
    #: people to cancel in the ERP.
    cancel_on_lost: bool = True

    # --- Observability --------------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool = True
    #: Sentry is on in the receiver and the workers when this is set.
    sentry_dsn: SecretStr | None = None
    sentry_environment: str | None = None
    #: Share of tasks and requests traced for Sentry performance; 0 sends errors only.
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    #: Business errors (credit hold, tax, prices) are expected and land in the dead-letter
    #: queue for their owners; send them to Sentry too only when this is on.
    sentry_report_business_errors: bool = False
    #: Each worker host serves its Prometheus metrics on this port; 0 serves none. The
    #: receiver serves them at ``/metrics``.
    metrics_port: int = Field(default=0, ge=0, le=65535)

    @field_validator("salesforce_org_ids", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("erp_time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not a time zone name (IANA, e.g. Europe/Berlin): {value!r}") \
                from None
        return value

    @model_validator(mode="after")
    def _servable_broker(self) -> Settings:
        # ConfigError, not ValueError: pydantic would print the whole input, passwords too.
        try:
            check_broker(self.redis_url, self.broker_url)
        except BrokerRefused as exc:
            raise ConfigError(f"invalid configuration: {exc}") from None
        return self

    @property
    def erp_zone(self) -> ZoneInfo:
        """The ERP site's time zone (``O2C_ERP_TIME_ZONE``)."""
        return ZoneInfo(self.erp_time_zone)

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def broker_kind(self) -> str:
        """``"redis"`` or ``"amqp"`` (RabbitMQ): which broker the fleet runs on."""
        return broker_kind(self.effective_broker_url)

    @property
    def dedupe_ttl_s(self) -> int:
        return self.dedupe_ttl_h * 3600

    @property
    def dlq_retention_s(self) -> int:
        return self.dlq_retention_d * 24 * 3600

    @property
    def max_wait_s(self) -> int:
        return self.max_wait_h * 3600

    def require(self, *names: str) -> None:
        """Fail fast, naming the environment variables that a command needs and lacks."""
        missing = [ENV_PREFIX + n.upper() for n in names if getattr(self, n) in (None, "", [])]
        if missing:
            raise ConfigError(f"missing required setting(s): {', '.join(missing)}")


def load_settings(**overrides: object) -> Settings:
    """Read the environment now; raise ConfigError naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ENV_PREFIX + str(err["loc"][0]).upper() if err["loc"] else "settings"
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once on first use (never at import time)."""
    return load_settings()
