"""Prometheus metrics of the receiver and the workers, defined once.

Under gunicorn and Celery's prefork pool every process counts for itself: set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory (one per host, wiped at start) in the
environment of every process and ``/metrics`` sums them all with prometheus-client's
multiprocess collector. Without it each process exposes only its own counts.

Labels take values from small fixed sets (sources, outcomes, domains, task names, HTTP
statuses, error categories, DocTypes): never ids, trace keys or paths with names in them.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger("o2c.metrics")

#: Seconds; an HTTP call to the ERP or Salesforce.
CALL_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Seconds; a task run.
TASK_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: Seconds from won to booked: seconds when all goes well, hours when a fix is needed.
WON_TO_BOOKED_BUCKETS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
                           4 * 3600.0, 24 * 3600.0, 7 * 24 * 3600.0)
#: Seconds from booked to invoiced: the ERP invoices on its own schedule.
BOOKED_TO_INVOICED_BUCKETS_S = (1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0,
                                24 * 3600.0, 3 * 24 * 3600.0, 7 * 24 * 3600.0,
                                30 * 24 * 3600.0)

NOTIFICATIONS_RECEIVED = Counter(
    "o2c_notifications_received", "Notifications (Salesforce) and events (ERP) taken in.",
    ["source"])
NOTIFICATIONS_ENQUEUED = Counter(
    "o2c_notifications_enqueued", "Notifications put on a queue for the workers.", ["source"])
NOTIFICATIONS_DEDUPED = Counter(
    "o2c_notifications_deduped", "Notifications already taken in once (resent), acknowledged "
    "and dropped.", ["source"])
NOTIFICATIONS_REJECTED = Counter(
    "o2c_notifications_rejected", "Notifications acknowledged but dead-lettered (invalid_payload, "
    "unrouted), and messages refused at the door (bad_request, unauthorized, forbidden, "
    "too_large, unavailable, ...).", ["source", "reason"])
TASKS = Counter(
    "o2c_tasks", "Task runs by outcome: succeeded, retried, dead_lettered, failed, returned "
    "(handed back to the queue).", ["domain", "task", "outcome"])
TASK_DURATION = Histogram(
    "o2c_task_duration_seconds", "Wall time of one task run.", ["domain"],
    buckets=TASK_BUCKETS_S)
ERP_REQUESTS = Counter(
    "o2c_erp_requests", "HTTP calls to the ERP by status (error: no answer).",
    ["method", "resource", "status"])
ERP_LATENCY = Histogram(
    "o2c_erp_request_duration_seconds", "Latency of HTTP calls to the ERP.",
    ["method", "resource"], buckets=CALL_BUCKETS_S)
SALESFORCE_REQUESTS = Counter(
    "o2c_salesforce_requests", "HTTP calls to Salesforce by status (error: no answer).",
    ["method", "status"])
SALESFORCE_LATENCY = Histogram(
    "o2c_salesforce_request_duration_seconds", "Latency of HTTP calls to Salesforce.",
    ["method"], buckets=CALL_BUCKETS_S)
LIMITER_ACQUIRES = Counter("o2c_limiter_acquires", "Slots granted by the fleet-wide limiter.",
                           ["limiter"])
LIMITER_WAITS = Counter("o2c_limiter_waits", "Acquires that had to wait.", ["limiter"])
LIMITER_WAIT_SECONDS = Counter("o2c_limiter_wait_seconds", "Seconds spent waiting for a slot.",
                               ["limiter"])
LIMITER_THROTTLES = Counter("o2c_limiter_throttles", "Acquires that gave up (Throttled).",
                            ["limiter"])
LIMITER_PAUSES = Counter("o2c_limiter_pauses", "Fleet-wide pauses asked for after a 429.",
                         ["limiter"])
DEAD_LETTERS = Counter("o2c_dead_letters", "Dead letters filed.", ["domain", "category"])
IGNORED = Counter("o2c_ignored", "Steps that found their ERP document not ours (keyed in the "
                  "ERP, not from Salesforce): acknowledged, left alone.", ["domain", "reason"])
STEP_WAITS = Counter(
    "o2c_step_waits", "Steps held back by a far side (no ERP slot, a 429) and published again "
    "for later without spending a retry attempt.", ["domain"])
WON_TO_BOOKED = Histogram(
    "o2c_won_to_booked_seconds", "From Closed Won in Salesforce to the ERP sales order.",
    buckets=WON_TO_BOOKED_BUCKETS_S)
BOOKED_TO_INVOICED = Histogram(
    "o2c_booked_to_invoiced_seconds", "From the ERP sales order to its invoice.",
    buckets=BOOKED_TO_INVOICED_BUCKETS_S)

SWEEP_RUNS = Counter(
    "o2c_sweep_runs", "Runs of the catch-up sweep by outcome: ok, busy (another sweep held "
    "the lease), failed.", ["outcome"])

ERP_FEED_RUNS = Counter(
    "o2c_sweep_erp_feed_runs", "Polls of the ERP change feed by outcome: ok, busy (another "
    "poll held the lease), failed.", ["outcome"])

#: Receiver refusals by HTTP status.
REJECT_REASONS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 411: "length_required", 413: "too_large",
                  415: "unsupported_media_type", 503: "unavailable"}

_RESOURCE = re.compile(r"^/api/(resource|method)/([^/?]+)")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def registry() -> CollectorRegistry:
    """What ``/metrics`` shows: every process of the host in multiprocess mode, else ours."""
    path = multiprocess_dir()
    if path is None:
        return REGISTRY
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=path)  # type: ignore[no-untyped-call]
    return merged


def render(*, extra: Sequence[Collector] = ()) -> tuple[bytes, str]:
    """The exposition text and its content type; ``extra`` collectors are read now, by
    this process alone (values of the whole fleet, read from Redis on each scrape)."""
    body = generate_latest(registry())
    if extra:
        own = CollectorRegistry(auto_describe=False)
        for collector in extra:
            own.register(collector)
        body += generate_latest(own)
    return body, CONTENT_TYPE_LATEST


class ScrapedGauge(Collector):
    """A gauge of the whole fleet, read from Redis when scraped; no sample when the value is
    unknown (Redis unreachable, or nothing to measure), rather than a false zero."""

    NAME = ""
    HELP = ""

    def __init__(self, read: Callable[[], float | None]) -> None:
        self._read = read

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.NAME, self.HELP)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.NAME, self.HELP)
        value = self._read()
        if value is not None:
            family.add_metric([], value)
        yield family


class StalledTransactions(ScrapedGauge):
    """``o2c_stalled_transactions``, counted when scraped."""

    NAME = "o2c_stalled_transactions"
    HELP = ("Transactions in flight with no progress for O2C_STALL_AFTER_S and no dead "
            "letter open or requeuing; the whole fleet's, so aggregate with max, not sum.")


class OpenDeadLetters(ScrapedGauge):
    """``o2c_dead_letters_open``, counted when scraped."""

    NAME = "o2c_dead_letters_open"
    HELP = ("Dead letters open now, waiting for people (o2c dlq list); the whole fleet's, so "
            "aggregate with max, not sum.")


class RequeuingDeadLetters(ScrapedGauge):
    """``o2c_dead_letters_requeuing``, counted when scraped."""

    NAME = "o2c_dead_letters_requeuing"
    HELP = ("Dead letters claimed by a requeue to RabbitMQ and not marked requeued: for a "
            "moment while a requeue runs; one that stays was left by a requeue that died "
            "after its claim (o2c dlq requeue --reclaim). The whole fleet's: aggregate with "
            "max.")


class RedisMemoryRatio(ScrapedGauge):
    """``o2c_redis_memory_ratio``: Redis ``used_memory`` over ``maxmemory`` when scraped."""

    NAME = "o2c_redis_memory_ratio"
    HELP = ("Redis used_memory / maxmemory (INFO memory); at 1 Redis refuses writes under "
            "noeviction. Absent when maxmemory is 0 (no limit) or Redis does not answer.")


def memory_ratio(info: dict[str, Any]) -> float | None:
    """``used_memory / maxmemory`` of an ``INFO memory`` answer; None without a limit."""
    limit = int(info.get("maxmemory") or 0)
    if limit <= 0:
        return None
    return int(info.get("used_memory") or 0) / limit


#: One sweep's figures, by field name (``o2c_workers.sweeps.state.SweepStatus``).
SweepFigures = Mapping[str, float | None]


class Sweeps(Collector):
    """``o2c_sweep_*``: each sweep's last successful run and watermark, read from Redis
    when scraped (no samples when Redis is unreachable). Alert on the watermark's age."""

    GAUGES = (
        ("o2c_sweep_last_success_timestamp_seconds", "finished_at",
         "When the sweep last finished a run successfully (epoch s)."),
        ("o2c_sweep_watermark_timestamp_seconds", "watermark",
         "The sweep's durable watermark (epoch s): everything modified before it was seen."),
        ("o2c_sweep_watermark_age_seconds", "watermark_age_s",
         "Seconds since the sweep's watermark; a few O2C_SWEEP_INTERVAL_S at most when the "
         "sweep runs (alert on it)."),
        ("o2c_sweep_records_seen", "seen", "Records the last successful run saw."),
        ("o2c_sweep_records_started", "started", "Chains the last successful run started."),
        ("o2c_sweep_api_calls", "api_calls",
         "API calls of the last successful run: Salesforce SOQL pages, or ERP list pages "
         "for the erp_feed."),
        ("o2c_sweep_failing", "failing", "1 when the newest run of the sweep failed."),
    )

    def __init__(self, read: Callable[[], Mapping[str, SweepFigures] | None]) -> None:
        self._read = read

    def describe(self) -> Iterator[Metric]:
        for name, _, help_text in self.GAUGES:
            yield GaugeMetricFamily(name, help_text, labels=["sweep"])

    def collect(self) -> Iterator[Metric]:
        figures = self._read() or {}
        for name, field, help_text in self.GAUGES:
            family = GaugeMetricFamily(name, help_text, labels=["sweep"])
            for sweep, values in sorted(figures.items()):
                value = values.get(field)
                if value is not None:
                    family.add_metric([sweep], float(value))
            yield family


def sweep_run(outcome: str) -> None:
    SWEEP_RUNS.labels(outcome).inc()


def erp_feed_run(outcome: str) -> None:
    ERP_FEED_RUNS.labels(outcome).inc()


def serve(port: int, *, address: str = "0.0.0.0") -> bool:  # noqa: S104 - scraped remotely
    """Serve ``/metrics`` on ``port`` from a daemon thread. False if another process of this
    host already serves it (with a shared multiprocess directory, one server shows all)."""
    try:
        start_http_server(port, addr=address, registry=registry())
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        log.warning("metrics port %d is taken; another process serves this host", port)
        return False
    log.info("serving Prometheus metrics on port %d", port)
    return True


# --- the counting, for the call sites --------------------------------------------------------


@lru_cache(maxsize=64)
def _notification_children(source: str, outcome: str) -> tuple[Any, ...]:
    """The counters one (source, outcome) moves, looked up once per process."""
    children: list[Any] = [NOTIFICATIONS_RECEIVED.labels(source)]
    if outcome == "enqueued":
        children.append(NOTIFICATIONS_ENQUEUED.labels(source))
    elif outcome == "duplicate":
        children.append(NOTIFICATIONS_DEDUPED.labels(source))
    elif outcome in ("invalid_payload", "unrouted"):
        children.append(NOTIFICATIONS_REJECTED.labels(source, outcome))
        children.append(DEAD_LETTERS.labels("receiver", outcome))
    return tuple(children)


def notification(source: str, outcome: str) -> None:
    """One notification taken in, by what became of it (the receiver's outcome)."""
    for child in _notification_children(source, outcome):
        child.inc()


def rejected(source: str, status: int) -> None:
    """A whole message refused with an HTTP error."""
    NOTIFICATIONS_REJECTED.labels(source, REJECT_REASONS.get(status, f"http_{status}")).inc()


def task_done(task_name: str, outcome: str, seconds: float | None) -> None:
    domain = task_name.split(".")[1] if task_name.count(".") >= 2 else "other"
    TASKS.labels(domain, task_name, outcome).inc()
    if seconds is not None:
        TASK_DURATION.labels(domain).observe(seconds)


def dead_letter(domain: str, category: str) -> None:
    DEAD_LETTERS.labels(domain, category).inc()


def ignored(domain: str, reason: str) -> None:
    IGNORED.labels(domain, reason).inc()
def step_wait(domain: str) -> None:
    STEP_WAITS.labels(domain).inc()


def erp_resource(path: str) -> str:
    """``/api/resource/Sales Order/SO-1`` → ``Sales Order``; a bounded label."""
    found = _RESOURCE.match(path)
    return found.group(2).replace("%20", " ") if found else "other"


def erp_call(method: str, path: str, status: int | None, seconds: float) -> None:
    resource = erp_resource(path)
    ERP_REQUESTS.labels(method, resource, str(status) if status else "error").inc()
    ERP_LATENCY.labels(method, resource).observe(seconds)


def salesforce_call(method: str, status: int | None, seconds: float) -> None:
    SALESFORCE_REQUESTS.labels(method, str(status) if status else "error").inc()
    SALESFORCE_LATENCY.labels(method).observe(seconds)


def milestone_latency(milestone: str, stamps: dict[str, float]) -> None:
    """Observe the latency a freshly stamped milestone closes."""
    if milestone == "booked" and "won" in stamps:
        WON_TO_BOOKED.observe(max(0.0, stamps["booked"] - stamps["won"]))
    elif milestone == "invoiced" and "booked" in stamps:
        BOOKED_TO_INVOICED.observe(max(0.0, stamps["invoiced"] - stamps["booked"]))


_LIMITER_COUNTERS: dict[str, Counter] = {
    "acquires": LIMITER_ACQUIRES, "waits": LIMITER_WAITS, "wait_seconds": LIMITER_WAIT_SECONDS,
    "throttles": LIMITER_THROTTLES, "pauses": LIMITER_PAUSES,
}


def limiter_listener(name: str) -> Callable[[dict[str, Any]], None]:
    """Feeds a limiter's ``LimiterStats`` deltas to the counters labelled ``name``."""
    children = {field: counter.labels(name) for field, counter in _LIMITER_COUNTERS.items()}

    def listen(deltas: dict[str, Any]) -> None:
        for field, delta in deltas.items():
            child = children.get(field)
            if child is not None and delta > 0:
                child.inc(delta)

    return listen
