"""Did every fault happen? Counted from the simulators' records and the injector's log, so
that a run that proves nothing (no lost answer, no kill) cannot pass."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from o2c_workers.demo.chaos.faults import BROKER_START, NODE_START, REDIS_START, Injected
from o2c_workers.demo.chaos.judge import Verdict
from o2c_workers.demo.chaos.observe import Records
from o2c_workers.demo.chaos.plan import (
    BROKER_KILL,
    MAINTENANCE,
    NODE_KILL,
    POOL_KILL,
    RECEIVER_KILL,
    REDIS_KILL,
)


@dataclass(frozen=True)
class FaultCount:
    fault: str
    count: int
    source: str
    required: bool = True


def _done(log: list[Injected], kind: str) -> int:
    return sum(1 for entry in log if entry.kind == kind and not entry.detail.startswith("skip"))


def fault_counts(records: Records, log: list[Injected], *, reorder: bool,
                 broker: str = "redis") -> list[FaultCount]:
    injected = Counter(records.erp_stats.get("faults_injected") or {})
    outbound = records.sf_stats.get("outbound") or {}
    refused = Counter(_refusal(a) for a in records.sf_deliveries if not a.get("acked"))
    erp, sf, harness = "ERP /_sandbox/stats", "Salesforce /_sandbox/stats", "the run's own log"
    deliveries = "Salesforce /_sandbox/deliveries"
    return [
        FaultCount("ERP 5xx answers", injected["error"], erp),
        FaultCount("ERP 429 answers (rate limit)",
                   injected["rate_limited"] + injected["concurrency_limited"], erp),
        FaultCount("ERP answers lost after the commit", injected["timeout_after_commit"], erp),
        FaultCount("ERP maintenance windows", _done(log, MAINTENANCE), harness),
        FaultCount("ERP calls refused in maintenance (503)", injected["maintenance"], erp),
        FaultCount("Salesforce duplicate deliveries", int(outbound.get("duplicates", 0)), sf),
        FaultCount("Salesforce reordered deliveries (setting)", int(reorder), "the run's options",
                   required=False),
        FaultCount("worker pool processes SIGKILLed", _done(log, POOL_KILL), harness),
        FaultCount("worker nodes SIGKILLed", _done(log, NODE_KILL), harness),
        FaultCount("worker nodes restarted by the supervisor", _done(log, NODE_START), harness),
        FaultCount("Redis SIGKILLed", _done(log, REDIS_KILL), harness),
        FaultCount("Redis restarted from its AOF", _done(log, REDIS_START), harness),
        *([FaultCount("RabbitMQ node SIGKILLed", _done(log, BROKER_KILL), harness),
           FaultCount("RabbitMQ node restarted from its data", _done(log, BROKER_START),
                      harness)] if broker == "rabbitmq" else []),
        FaultCount("receiver workers SIGKILLed", _done(log, RECEIVER_KILL), harness),
        FaultCount("Salesforce deliveries cut (no answer)", refused["no answer"], deliveries,
                   required=False),
        FaultCount("Salesforce deliveries refused (HTTP 503)", refused["503"], deliveries,
                   required=False),
    ]


def _refusal(attempt: dict[str, Any]) -> str:
    status = attempt.get("status")
    return "no answer" if status is None else str(status)


def exercised(counts: list[FaultCount]) -> Verdict:
    missing = [c.fault for c in counts if c.required and c.count < 1]
    return Verdict("every fault kind happened", not missing,
                   f"{sum(1 for c in counts if c.required and c.count)} of "
                   f"{sum(1 for c in counts if c.required)}", "all", missing)


def as_dicts(counts: list[FaultCount]) -> list[dict[str, Any]]:
    return [asdict(c) for c in counts]
