"""How many processes each worker runs: per queue, sized from the steps' measured times.

The steps do not cost alike. In the end-to-end benchmark (``python -m tests.bench e2e``,
bursts of 300 at 20 ms ERP latency; docs/benchmarks.md "End to end") the pool time each
booked order took was: order 98 to 123 ms (the idempotent lookup and the submit: two ERP
round trips, then the write-back), customer 29 to 46 ms, pricing 18 to 23 ms (the master
data comes from the cache). The order step waits on the ERP three to five times as long
as any other, so with one concurrency for every queue its queue backs up while the rest
idle. The defaults below give the fleet's sixteen processes in proportion to those
times, with two at least on every queue (a SIGKILLed process leaves its queue one that
works) and one more on the customer queue for the sweeps it also runs; invoicing and
payment are driven by the ERP's events, one cheap step each.

A worker consuming one domain's queue (``-Q pricing``; the customer worker also takes
``sweep``) runs, first found:

1. ``-c N`` on its command line (Celery's own option);
2. ``<DOMAIN>_CONCURRENCY`` (``PRICING_CONCURRENCY=8``) from its environment;
3. ``WORKER_CONCURRENCY``, one figure for every queue (what the fleet read before);
4. the default of its domain, :data:`DEFAULTS`.

A worker on several domains' queues (a development worker on all of them) skips step 2
and 4 and falls back to Celery's default (the CPU count). A value that is not a whole
number from 1 to :data:`MAX` stops the worker at start, naming the variable.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import click

from o2c_workers.domains import DOMAINS

log = logging.getLogger("o2c.sizing")

#: Prefork processes per worker, by the domain it consumes (see the module's docstring).
DEFAULTS: dict[str, int] = {"customer": 3, "pricing": 2, "order": 7, "invoice": 2,
                            "payment": 2}
#: The fleet-wide variable, read when a domain's own is unset.
FLEET_VARIABLE = "WORKER_CONCURRENCY"
#: More processes than this on one worker is a typo, not a sizing.
MAX = 256
#: ``celery worker|beat`` exits with this on a refused setting (EX_CONFIG).
REFUSED_EXIT = 78


class SizingRefused(ValueError):
    """A concurrency variable that is not a usable number; the message names it."""


@dataclass(frozen=True)
class Sizing:
    """A worker's process count and where it came from (``None``: Celery's default)."""

    processes: int | None
    source: str


def variable(domain: str) -> str:
    """``pricing`` → ``PRICING_CONCURRENCY``."""
    return f"{domain.upper()}_CONCURRENCY"


def domains_of(queues: Iterable[str]) -> list[str]:
    return [queue for queue in queues if queue in DOMAINS]


def parse(name: str, value: str) -> int:
    text = value.strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX:
        raise SizingRefused(f"{name}={value!r}: a worker's process count must be a whole "
                            f"number from 1 to {MAX}")
    return int(text)


def size(queues: Iterable[str], env: Mapping[str, str]) -> Sizing:
    """The process count of a worker consuming ``queues``, from ``env`` (see above)."""
    domains = domains_of(queues)
    own = variable(domains[0]) if len(domains) == 1 else None
    if own is not None and env.get(own, "").strip():
        return Sizing(parse(own, env[own]), own)
    if env.get(FLEET_VARIABLE, "").strip():
        return Sizing(parse(FLEET_VARIABLE, env[FLEET_VARIABLE]), FLEET_VARIABLE)
    if own is not None:
        return Sizing(DEFAULTS[domains[0]], f"the {domains[0]} default")
    return Sizing(None, "Celery's default (the CPU count)")


def queue_names(option: Any) -> list[str]:
    """The ``-Q`` option as Celery's worker command hands it over (text or a list)."""
    if not option:
        return []
    parts = option.split(",") if isinstance(option, str) else list(option)
    return [str(part).strip() for part in parts if str(part).strip()]


def size_worker(conf: Any = None, options: dict[str, Any] | None = None, **_: Any) -> None:
    """``celeryd_init``: set ``worker_concurrency`` unless ``-c`` was given."""
    options = options or {}
    if options.get("concurrency"):
        return
    try:
        sizing = size(queue_names(options.get("queues")), os.environ)
    except SizingRefused as exc:
        click.echo(f"o2c-workers: {exc}", err=True)
        sys.exit(REFUSED_EXIT)
    if sizing.processes is not None and conf is not None:
        conf.worker_concurrency = sizing.processes
    global _chosen
    _chosen = sizing


#: What ``size_worker`` chose, logged once the worker's logging is set up.
_chosen: Sizing | None = None


def log_sizing(**_: Any) -> None:
    """``worker_ready``: say how many processes the worker runs and why."""
    if _chosen is not None:
        log.info("worker processes: %s (%s)", _chosen.processes or "the CPU count",
                 _chosen.source)
