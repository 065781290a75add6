"""The fleet's domains: one queue, one worker process type and one task module each."""

from __future__ import annotations

#: The domain queues, one worker process type each.
DOMAINS = ("customer", "pricing", "order", "invoice", "payment")

TASK_MODULES = [f"tasks.{domain}" for domain in DOMAINS]

#: The catch-up sweep's own queue (not a domain): the customer workers consume it too, so
#: it needs no process type of its own, and a backlog of chains never delays it.
SWEEP_QUEUE = "sweep"
SWEEP_TASK_MODULE = "tasks.sweep"


def domain_of(task_name: str) -> str:
    """``o2c.order.submit_order`` → ``order``."""
    parts = task_name.split(".")
    if len(parts) < 3 or parts[0] != "o2c" or parts[1] not in DOMAINS:
        raise ValueError(f"not an o2c task name: {task_name!r}")
    return parts[1]
