"""What the delivery benchmark runs: units of work (a task, or a chain) and their queues."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.bench.delivery_tasks import CHAIN, NOOP


@dataclass
class Workload:
    name: str
    #: The tasks of one unit of work, run in order as a chain (one task: a lone message).
    tasks: tuple[str, ...]
    #: One worker per queue.
    queues: tuple[str, ...]
    unit: str
    #: Units pre-loaded per round, and with ``--quick``.
    units_full: int
    units_quick: int

    def units(self, *, quick: bool) -> int:
        return self.units_quick if quick else self.units_full

    @property
    def steps(self) -> int:
        return len(self.tasks)

    def payloads(self, units: int, marks: list[int]) -> Iterator[tuple[str, dict[str, Any]]]:
        """The trace key and first step's argument of each unit of one round."""
        for n in range(units):
            yield f"bench:{n}", {"n": n, "marks": marks}

    def env(self) -> dict[str, str]:
        """What the workers need beyond the bench Redis (the sandbox, for the O2C chain)."""
        return {}


WORKLOADS = (
    Workload("no-op tasks", (NOOP,), ("order",), "task", 5000, 200),
    Workload("4-step chain", CHAIN, ("customer", "pricing", "order"), "chain", 1000, 50),
)
