"""The Celery app of the fleet: one queue per domain, late acks, JSON only.

Nothing here connects or reads the environment at import time: the configuration is a
promise that Celery resolves on first use (``add_defaults`` with a callable).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any

import click
from celery import Celery
from kombu.entity import Exchange, Queue

from config import ConfigError, Settings, get_settings
from o2c_workers import keys, signals
from o2c_workers.amqp import topology
from o2c_workers.domains import DOMAINS, SWEEP_QUEUE, SWEEP_TASK_MODULE, TASK_MODULES, domain_of
from o2c_workers.flower_auth import REFUSED_EXIT, check_flower_start, running_flower
from o2c_workers.flusher_step import FlusherStep
from o2c_workers.redis_urls import SentinelUrl, is_sentinel

__all__ = ["DOMAINS", "TASK_MODULES", "celery_config", "create_app", "domain_of", "get_app"]

#: The fleet's Redis transport (``o2c_workers.delivery``), and the same behind Sentinel.
RELIABLE_TRANSPORT = "o2c_workers.delivery.transport:Transport"
RELIABLE_SENTINEL_TRANSPORT = "o2c_workers.delivery.transport:SentinelTransport"
#: The worker's consumer on RabbitMQ, and Celery's own (on Redis).
CONSUMER = "o2c_workers.amqp.consumer:Consumer"
CELERY_CONSUMER = "celery.worker.consumer:Consumer"
#: The periodic sweep's task and its beat entry.
SWEEP_TASK = "o2c.sweep.run"
SWEEP_ENTRY = "salesforce-sweep"
#: The ERP change feed's task and its beat entry.
ERP_FEED_TASK = "o2c.sweep.erp_feed"
ERP_FEED_ENTRY = "erp-feed"
#: The active beat process renews its lease every tick (at most this many seconds apart);
#: a second beat waits, and takes over within the lease's TTL once the first is gone.
BEAT_MAX_LOOP_INTERVAL_S = 5
BEAT_LOCK_TIMEOUT_S = 30


def broker_transport(settings: Settings, *, monitor: bool = False) -> str | None:
    """Our reliable transport for a Redis broker (unless turned off), else the URL's own.

    A ``monitor`` (Flower) takes no task from a queue; it keeps kombu's stock transport,
    named by the URL's scheme, because Flower reads queue lengths only for the schemes it
    knows (``redis``, ``sentinel``) and takes our class path for an unknown one."""
    url = settings.effective_broker_url
    if monitor or not settings.reliable_delivery:
        return None
    if is_sentinel(url):
        return RELIABLE_SENTINEL_TRANSPORT
    return RELIABLE_TRANSPORT if url.startswith("redis://") else None


def broker_url(settings: Settings) -> str:
    """The broker URL in kombu's terms (a Sentinel URL becomes kombu's list of them)."""
    url = settings.effective_broker_url
    return SentinelUrl.parse(url).kombu_url() if is_sentinel(url) else url


def sentinel_options(url: str) -> dict[str, Any]:
    """kombu's transport options for a Sentinel URL (none for a server's)."""
    return SentinelUrl.parse(url).kombu_options() if is_sentinel(url) else {}


def redbeat_redis(url: str) -> dict[str, Any]:
    """RedBeat's URL and client options for the state Redis (a server's URL as it is)."""
    if not is_sentinel(url):
        return {"redbeat_redis_url": url, "redbeat_redis_options": {}}
    where = SentinelUrl.parse(url)
    options: dict[str, Any] = {
        "sentinels": list(where.sentinels), "service_name": where.master, "db": where.db,
        "password": where.password, "socket_timeout": 5.0}
    if where.username:
        options["username"] = where.username
    if where.sentinel_kwargs():
        options["sentinel_kwargs"] = where.sentinel_kwargs()
    return {"redbeat_redis_url": "redis-sentinel://", "redbeat_redis_options": options}


def beat_config(settings: Settings) -> dict[str, Any]:
    """One beat process for the fleet, however many are started: RedBeat keeps the
    schedule in Redis and lets only the holder of its lock send tasks
    (https://github.com/sibson/redbeat; keys in ``o2c_workers.keys``)."""
    interval = float(settings.sweep_interval_s)
    feed_interval = float(settings.erp_feed_interval_s)
    return {
        "beat_scheduler": "redbeat.RedBeatScheduler",
        "beat_max_loop_interval": BEAT_MAX_LOOP_INTERVAL_S,
        "beat_schedule": {
            SWEEP_ENTRY: {
                "task": SWEEP_TASK, "schedule": interval,
                # A sweep still queued when the next is due is dropped, not piled up.
                "options": {"queue": SWEEP_QUEUE, "expires": interval}},
            ERP_FEED_ENTRY: {
                "task": ERP_FEED_TASK, "schedule": feed_interval,
                "options": {"queue": SWEEP_QUEUE, "expires": feed_interval}}},
        **redbeat_redis(settings.redis_url),
        "redbeat_key_prefix": keys.beat(settings.key_prefix),
        "redbeat_lock_timeout": BEAT_LOCK_TIMEOUT_S,
    }


def queue_config(settings: Settings) -> dict[str, Any]:
    """The queues and routes: on Redis one list per queue; on RabbitMQ the quorum queues of
    ``o2c_workers.amqp.topology`` on its topic exchange, and publisher confirms."""
    names = (*DOMAINS, SWEEP_QUEUE)
    if settings.broker_kind == "amqp":
        return {
            "task_queues": topology.task_queues(),
            "task_routes": {f"o2c.{d}.*": {"queue": d, "exchange": topology.EXCHANGE,
                                           "routing_key": d} for d in names},
            "broker_native_delayed_delivery_queue_type": topology.QUEUE_TYPE,
            # Declares the whole topology before Celery binds it for delayed delivery, and
            # files what RabbitMQ dead-letters (o2c_workers.amqp.consumer).
            "worker_consumer": CONSUMER,
        }
    return {
        "task_queues": [
            Queue(d, Exchange(d, type="direct"), routing_key=d)  # type: ignore[no-untyped-call]
            for d in names
        ],
        "task_routes": {f"o2c.{d}.*": {"queue": d, "routing_key": d} for d in names},
        "worker_consumer": CELERY_CONSUMER,
    }


def celery_config(settings: Settings, *, monitor: bool = False) -> dict[str, Any]:
    """The Celery settings of the fleet, derived from ours (``monitor``: for Flower)."""
    visibility = settings.visibility_timeout_s
    transport: dict[str, Any] = {
        # Read by the reliable transport: where its keys live and how soon a dead
        # consumer's held work comes back.
        "o2c_prefix": settings.key_prefix,
        "redelivery_after_s": settings.redelivery_after_s,
        # A Sentinel broker: the master's name and how to sign in at the sentinels.
        **sentinel_options(settings.effective_broker_url),
        # RabbitMQ: a publish returns once the broker has confirmed it (py-amqp).
        **({"confirm_publish": True} if settings.broker_kind == "amqp" else {}),
        # Stock transport only: an unacked message returns to its queue after this long.
        # Every countdown is capped at O2C_MAX_COUNTDOWN_S, well below it (kombu #337).
        "visibility_timeout": visibility,
        # kombu looks for such messages every interval x throttle seconds (100 s by
        # default); sweep every few seconds so a crashed node's work returns promptly
        # once its visibility timeout has passed. Each sweep is one ZRANGE.
        "unacked_restore_interval": max(1, min(10, visibility // 4)),
        "unacked_restore_throttle": 1,
    }
    return {
        "broker_url": broker_url(settings),
        "broker_transport": broker_transport(settings, monitor=monitor),
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": visibility},
        "visibility_timeout": visibility,
        # Without this a worker that starts before Redis exits at once (Celery 6 default).
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        # "May duplicate" rather than "may lose": every step is idempotent.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        **queue_config(settings),
        "task_default_queue": "order",
        "task_create_missing_queues": False,
        # Flower needs task events.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # The default gives up publishing after ~0.6 s and a retry's message is then lost;
        # this rides out a Redis failover or restart of about a minute.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 30,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 3.0,
        },
        "task_time_limit": 300,
        "task_soft_time_limit": 240,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "enable_utc": True,
        "timezone": "UTC",
        **beat_config(settings),
    }


def create_app(*, monitor: bool = False) -> Celery:
    """A new app of the fleet, its signal handlers wired; nothing connects until used.
    ``monitor``: the app of a Flower process (see ``broker_transport``)."""
    signals.connect()
    app = Celery(
        "o2c_workers",
        set_as_current=False,
        task_cls="o2c_workers.base_task:O2CTask",
        include=[*TASK_MODULES, SWEEP_TASK_MODULE],
    )
    app.add_defaults(lambda: celery_config(get_settings(), monitor=monitor))
    # Every worker process flushes the Salesforce write-back outbox (o2c_workers.writeback).
    app.steps["worker"].add(FlusherStep)
    return app


def running_celery() -> bool:
    """Whether this process is Celery's command line (a worker, beat, Flower, ...)."""
    ctx = click.get_current_context(silent=True)
    cli = sys.modules.get("celery.bin.celery")
    return ctx is not None and cli is not None and ctx.find_root().command is cli.celery


def check_settings_at_start() -> None:
    """Under Celery's command line, read the settings now and exit with the message if they
    are refused (a broker the fleet cannot serve, ``config.broker``), before anything runs."""
    if not running_celery():
        return
    try:
        get_settings()
    except ConfigError as exc:
        click.echo(f"o2c-workers: {exc}", err=True)
        sys.exit(REFUSED_EXIT)


@lru_cache(maxsize=1)
def get_app() -> Celery:
    """The process's app (``celery -A o2c_workers`` finds it as ``o2c_workers.app``).

    Under Celery's command line it first checks the settings, and under ``celery -A
    o2c_workers flower`` that Flower will ask for credentials (``o2c_workers.flower_auth``),
    and exits if not."""
    check_settings_at_start()
    check_flower_start()
    return create_app(monitor=running_flower())
