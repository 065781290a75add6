"""The disruptive faults, done to the running stack as a crash, an OOM kill or an operator
would do them; every one is logged with what it hit."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import requests

from o2c_workers.demo.chaos import procnet
from o2c_workers.demo.chaos.plan import (
    BROKER_KILL,
    MAINTENANCE,
    NODE_KILL,
    POOL_KILL,
    RECEIVER_KILL,
    REDIS_KILL,
    ChaosOptions,
    Event,
)
from o2c_workers.demo.chaos.stack import Stack

#: Follow-ups a fault schedules: a supervisor's restart, Redis's restart.
NODE_START, REDIS_START, BROKER_START = "node_start", "redis_start", "broker_start"
#: How long the receiver kill waits for a Salesforce delivery to be in flight, seconds.
IN_FLIGHT_WAIT_S = 3.0
#: Longest time the receiver worker serving the delivery runs before it is killed, seconds.
RECEIVER_GRACE_S = 0.004
#: Receiver kills tried, at most, to cut one of Salesforce's deliveries.
RECEIVER_TRIES = 3


@dataclass(frozen=True)
class Injected:
    """One fault as it happened, ``at_s`` seconds into the chaos phase."""

    at_s: float
    kind: str
    target: str
    detail: str
    wall_time: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Injector:
    """Applies scheduled faults to one stack; ``log`` is what was done."""

    def __init__(self, stack: Stack, opts: ChaosOptions, sf: requests.Session,
                 win: Callable[[tuple[str, ...]], None]) -> None:
        self.stack, self.opts, self.sf, self.win = stack, opts, sf, win
        self.log: list[Injected] = []
        self._started = time.monotonic()

    def start_clock(self) -> None:
        self._started = time.monotonic()

    def apply(self, event: Event) -> list[Event]:
        """Do one fault; returns the follow-ups to schedule (restarts)."""
        handlers = {POOL_KILL: self._pool_kill, NODE_KILL: self._node_kill,
                    NODE_START: self._node_start, REDIS_KILL: self._redis_kill,
                    REDIS_START: self._redis_start, RECEIVER_KILL: self._receiver_kill,
                    MAINTENANCE: self._maintenance, BROKER_KILL: self._broker_kill,
                    BROKER_START: self._broker_start}
        return handlers[event.kind](event)

    def _note(self, kind: str, target: str, detail: str) -> None:
        self.log.append(Injected(round(time.monotonic() - self._started, 2), kind, target,
                                 detail, time.time()))

    def _pool_kill(self, event: Event) -> list[Event]:
        node = self.stack.process(event.target)
        children = sorted(node.children())
        if not children:
            self._note(POOL_KILL, event.target, "skipped: no pool process (node restarting)")
            return []
        victim = children[int(event.pick * len(children))]
        _signal(victim, signal.SIGKILL)
        self._note(POOL_KILL, event.target, f"SIGKILL pool process {victim}")
        return []

    def _node_kill(self, event: Event) -> list[Event]:
        node = self.stack.process(event.target)
        if not node.alive():
            self._note(NODE_KILL, event.target, "skipped: already down")
            return []
        pids = [node.pid, *node.children()]
        node.kill()
        self._note(NODE_KILL, event.target, f"SIGKILL main {pids[0]} and pool {pids[1:]}")
        return [Event(self._now() + self.opts.node_restart_after_s, NODE_START, event.target)]

    def _node_start(self, event: Event) -> list[Event]:
        node = self.stack.fleet.respawn(self.stack.process(event.target))
        self._note(NODE_START, event.target, f"supervisor started it again as {node.pid}")
        return []

    def _redis_kill(self, event: Event) -> list[Event]:
        pid = self.stack.redis.process.pid if self.stack.redis.process else None
        self.stack.redis.kill()
        self._note(REDIS_KILL, "redis", f"SIGKILL redis-server {pid}")
        return [Event(self._now() + self.opts.redis_down_s, REDIS_START)]

    def _redis_start(self, event: Event) -> list[Event]:
        self.stack.restart_redis()
        self._note(REDIS_START, "redis", "started again from its AOF on the same port")
        return []

    def _broker_kill(self, event: Event) -> list[Event]:
        node = self.stack.rabbitmq
        if node is None:
            self._note(BROKER_KILL, "rabbitmq", "skipped: the broker is the state Redis")
            return []
        pid = node.beam_pid()
        node.kill()
        self._note(BROKER_KILL, "rabbitmq", f"SIGKILL the RabbitMQ node's VM {pid}")
        return [Event(self._now() + self.opts.broker_down_s, BROKER_START)]

    def _broker_start(self, event: Event) -> list[Event]:
        assert self.stack.rabbitmq is not None
        self.stack.rabbitmq.start()
        self._note(BROKER_START, "rabbitmq", "started again from its data on the same port")
        return []

    def _receiver_kill(self, event: Event) -> list[Event]:
        """SIGKILL a gunicorn worker while it serves a Salesforce delivery; its master starts
        a new one and Salesforce sends again. Tried again (on the rush's next delivery)
        when Salesforce's record shows the kill cut no delivery of its own."""
        ids = event.ids
        for attempt in range(1, RECEIVER_TRIES + 1):
            cut, detail = self._kill_serving_worker(event.pick, ids)
            self._note(RECEIVER_KILL, "web", f"{detail}; Salesforce's delivery "
                       f"{'cut' if cut else 'not cut'} (try {attempt})")
            if cut:
                break
            ids = ()
        return []

    def _kill_serving_worker(self, pick: float, ids: tuple[str, ...]) -> tuple[bool, str]:
        """The workers are frozen (SIGSTOP) first, so the delivery is sure to be in flight,
        unanswered; the one holding the largest unread request (Salesforce's SOAP message of
        many notifications, not an ERP event) is let go for a seeded few milliseconds (it
        reads, parses, maybe enqueues) and SIGKILLed before it can answer."""
        since = time.time()
        workers = sorted(self.stack.web.children())
        for pid in workers:
            _signal(pid, signal.SIGSTOP)
        try:
            if ids:
                self.win(ids)
            seen = self._wait_in_flight()
            waiting = procnet.unread(workers, self.stack.receiver_port)
            victim = max(workers, key=lambda pid: waiting[pid])
            _signal(victim, signal.SIGCONT)
            time.sleep(pick * RECEIVER_GRACE_S)
            _signal(victim, signal.SIGKILL)
        finally:
            for pid in workers:
                _signal(pid, signal.SIGCONT)
        state = "a delivery in flight" if seen else "no delivery seen in flight"
        return self._cut_since(since), (
            f"SIGKILL gunicorn worker {victim} {pick * RECEIVER_GRACE_S * 1000:.0f} ms after "
            f"letting it go ({state}; {waiting[victim]} bytes unread)")

    def _cut_since(self, since: float) -> bool:
        """Whether Salesforce's record shows a delivery left without an answer since then."""
        time.sleep(1.0)
        log = self.sf.get(f"{self.stack.sf_url}/_sandbox/deliveries", timeout=10).json()
        return any(a["status"] is None and not a["acked"]
                   and datetime.fromisoformat(a["at"]).timestamp() >= since
                   for a in log.get("attempts_log", []))

    def _wait_in_flight(self) -> bool:
        """Poll Salesforce's sender until a delivery is in flight."""
        deadline = time.monotonic() + IN_FLIGHT_WAIT_S
        while time.monotonic() < deadline:
            try:
                stats = self.sf.get(f"{self.stack.sf_url}/_sandbox/stats", timeout=2).json()
            except requests.RequestException:
                continue
            if int(stats["outbound"]["in_flight"]) > 0:
                time.sleep(0.05)  # the request's bytes reach the receiver's socket
                return True
        return False

    def _maintenance(self, event: Event) -> list[Event]:
        requests.post(f"{self.stack.erp_url}/_sandbox/faults", timeout=5,
                      json={"maintenance_for_s": self.opts.maintenance_s}).raise_for_status()
        self._note(MAINTENANCE, "erp", f"maintenance window of {self.opts.maintenance_s:g} s")
        return []

    def _now(self) -> float:
        return time.monotonic() - self._started


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
