"""Per-process resources (Redis client, stores, HTTP clients), built once per process.

Workers build them in ``worker_process_init``; the receiver and the CLI on first use. Tests
build their own and pass them in, so nothing here is a hidden global that a test must patch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from config import Settings, get_settings
from o2c_workers.dlq import DeadLetterStore
from o2c_workers.redis_urls import SentinelUrl, is_sentinel
from o2c_workers.services.left import LeftWon
from o2c_workers.services.orders import WriteBackFields
from o2c_workers.services.shared_reads import SharedReads
from o2c_workers.writeback import Outbox

if TYPE_CHECKING:
    from o2c_workers.erp.protocol import ErpAdapter
    from o2c_workers.services.ports import SalesforceApi


@dataclass
class Runtime:
    settings: Settings
    redis: redis.Redis
    dead_letters: DeadLetterStore
    #: Lazily built clients (ERP adapter, Salesforce client), keyed by name.
    clients: dict[str, Any] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return self.settings.key_prefix

    def _client(self, name: str, factory: Callable[[], Any]) -> Any:
        with _lock:
            if name not in self.clients:
                self.clients[name] = factory()
            return self.clients[name]

    @property
    def erp(self) -> ErpAdapter:
        from o2c_workers.erp import build_adapter

        return cast("ErpAdapter", self._client(
            "erp", lambda: build_adapter(self.settings, self.redis)))

    @property
    def salesforce(self) -> SalesforceApi:
        from o2c_workers.salesforce import build_salesforce

        return cast("SalesforceApi", self._client(
            "salesforce", lambda: build_salesforce(self.settings)))

    @property
    def outbox(self) -> Outbox:
        """Where steps accept their Salesforce status writes (``o2c_workers.writeback``)."""
        return cast(Outbox, self._client("outbox", lambda: Outbox(
            self.redis, prefix=self.prefix, flush_s=self.settings.sf_flush_s)))

    @property
    def fields(self) -> WriteBackFields:
        return write_back_fields(self.settings)

    @property
    def shared_reads(self) -> SharedReads:
        """Reads shared by the won opportunities of one outbound message."""
        return cast(SharedReads, self._client("shared_reads", lambda: SharedReads(
            self.redis, prefix=self.prefix)))

    @property
    def left_won(self) -> LeftWon:
        """Notes of opportunities seen no longer won (``services.left``)."""
        return cast(LeftWon, self._client("left_won", lambda: LeftWon(
            self.redis, prefix=self.prefix, ttl_s=self.settings.dedupe_ttl_s)))


def write_back_fields(s: Settings) -> WriteBackFields:
    """The Salesforce fields the fleet writes, as the settings name them."""
    return WriteBackFields(
        customer_number=s.sf_field_customer_number, order_number=s.sf_field_order_number,
        order_status=s.sf_field_order_status, invoice_status=s.sf_field_invoice_status,
        payment_status=s.sf_field_payment_status)


def check_erp_at_start(runtime: Runtime) -> threading.Thread | None:
    """Look at the ERP's setup (a unique ``salesforce_id``) as a worker process starts, on a
    thread of its own: a slow ERP must not hold up the pool's start. Only logs; the adapter
    keeps the verdict for its creates (``o2c_workers.erp.unique``)."""
    settings = runtime.settings
    if not settings.erp_check_unique_ids or settings.erp_api_key is None:
        return None
    from o2c_workers.erp.unique import check_at_start

    thread = threading.Thread(target=lambda: check_at_start(runtime.erp),
                              name="o2c-erp-check", daemon=True)
    thread.start()
    return thread


def connect(url: str, *, retries: int = 3) -> redis.Redis:
    """A Redis client with explicit timeouts and a short, capped retry on connection loss.

    The receiver uses ``retries=1``: when Redis is down it answers 503 at once and
    Salesforce resends, rather than holding the request through a long backoff. A
    ``sentinel://`` URL gives a client of the master the sentinels name now, asked again
    whenever a connection is made (``o2c_workers.redis_urls``).
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": 2.0, "socket_timeout": 5.0, "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    # The sentinels name the master; after a failover a new connection asks them again.
    where = SentinelUrl.parse(url)
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        list(where.sentinels), sentinel_kwargs={
            "socket_connect_timeout": 2.0, "socket_timeout": 2.0,
            **(where.sentinel_kwargs() or {})})
    client: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
        where.master, db=where.db, username=where.username, password=where.password,
        **options)
    return client


def build_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or get_settings()
    client = connect(settings.redis_url)
    return Runtime(
        settings=settings,
        redis=client,
        dead_letters=DeadLetterStore(client, prefix=settings.key_prefix),
    )


_lock = threading.RLock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """This process's runtime, built on first use."""
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = build_runtime()
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install (or drop, with None) this process's runtime."""
    global _runtime
    with _lock:
        _runtime = runtime
