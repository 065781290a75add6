"""Play the schedule: win opportunities in Salesforce in waves and inject the faults on
time; then, once the last fault is over, win the calm cohort."""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import requests
from rich.console import Console

from o2c_workers.demo.chaos.faults import Injector
from o2c_workers.demo.chaos.plan import MAINTENANCE, Schedule


@dataclass
class Timeline:
    """When each opportunity was won and when the faults were over (monotonic seconds)."""

    started: float
    won_at: dict[str, float] = field(default_factory=dict)
    calm_ids: list[str] = field(default_factory=list)
    last_fault_at: float = 0.0

    def since_start(self, moment: float) -> float:
        return round(moment - self.started, 2)

    def record(self, ids: tuple[str, ...] | list[str], moment: float) -> None:
        self.won_at.update(dict.fromkeys(ids, moment))


def win(sf: requests.Session, sf_url: str, ids: list[str] | tuple[str, ...]) -> float:
    """Set opportunities Closed Won, as a sales rep would; the moment it was asked."""
    moment = time.monotonic()
    answer = sf.post(f"{sf_url}/_sandbox/opportunities/win", json={"ids": list(ids)},
                     timeout=30)
    answer.raise_for_status()
    return moment


def play(schedule: Schedule, injector: Injector, timeline: Timeline, sf: requests.Session,
         sf_url: str, console: Console) -> None:
    """Run the chaos phase to its last fault, then win the calm cohort."""
    timeline.started = time.monotonic()
    injector.start_clock()
    queue = list(schedule.events)
    heapq.heapify(queue)
    while queue:
        event = heapq.heappop(queue)
        _sleep_until(timeline.started + event.at_s)
        if event.kind == "win":
            timeline.record(event.ids, win(sf, sf_url, event.ids))
            continue
        done = len(injector.log)
        for follow in injector.apply(event):
            heapq.heappush(queue, follow)
        for entry in injector.log[done:]:
            console.print(f"[dim]{entry.at_s:7.2f}s[/] {entry.kind:<16} {entry.target:<9} "
                          f"{entry.detail}", highlight=False)
        # A maintenance window is over when it closes, not when it opens.
        lasting = injector.opts.maintenance_s if event.kind == MAINTENANCE else 0.0
        timeline.last_fault_at = max(timeline.last_fault_at, time.monotonic() + lasting)
    _sleep_until(timeline.last_fault_at)
    timeline.calm_ids = list(schedule.calm_ids)
    console.print(f"[dim]{timeline.since_start(time.monotonic()):7.2f}s[/] winning the "
                  f"{len(schedule.calm_ids)} opportunities of the calm cohort (after the last "
                  f"fault) in {len(schedule.calm_waves)} waves")
    for n, wave in enumerate(schedule.calm_waves):
        _sleep_until(timeline.last_fault_at + n)
        timeline.record(wave, win(sf, sf_url, wave))


def _sleep_until(moment: float) -> None:
    left = moment - time.monotonic()
    if left > 0:
        time.sleep(left)
