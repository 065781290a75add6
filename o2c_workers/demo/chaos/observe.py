"""What the judge may look at: the simulators' records, Salesforce's fields, and the ``o2c``
command. Nothing here reads the fleet's own state in Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from o2c_workers import sfid

#: How often Salesforce's write-back fields are read, seconds (the latency's resolution).
POLL_S = 1.0
ORDER_FIELD = "ERP_Order_Number__c"


def opportunities(sf: requests.Session, sf_url: str) -> dict[str, dict[str, Any]]:
    """Every Opportunity as Salesforce holds it, by 18-character id."""
    answer = sf.get(f"{sf_url}/_sandbox/records/Opportunity", timeout=30)
    answer.raise_for_status()
    return {sfid.to18(r["Id"]): r for r in answer.json()}


def erp_documents(erp_url: str, doctype: str,
                  where: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every document of ``doctype`` (``where``: those whose field holds one of the
    comma-separated values)."""
    answer = requests.get(f"{erp_url}/_sandbox/documents/{doctype}", params=where,
                          timeout=30)
    answer.raise_for_status()
    return list(answer.json()["data"])


def dead_letters(env: dict[str, str], *where: str) -> list[dict[str, Any]] | None:
    """Every dead letter (any status; ``where``: more of the command's filters), as ``o2c
    dlq list --json`` gives them with the fleet's ``env``; None when the command could not
    answer (Redis down)."""
    entries: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        done = subprocess.run(
            [sys.executable, "-m", "o2c_workers.cli", "dlq", "list", "--json", "--status",
             "all", "--limit", "1000", "--offset", str(offset), *where],
            env=env, capture_output=True,
            text=True, timeout=60, check=False)
        if done.returncode != 0:
            return None
        page = json.loads(done.stdout)
        entries += page["entries"]
        offset = page["next_offset"]
    return entries


@dataclass
class WriteBackWatch:
    """Reads Salesforce every second and notes when each opportunity first shows its ERP
    order number: the moment it counts as booked."""

    sf: requests.Session
    sf_url: str
    first_seen: dict[str, float] = field(default_factory=dict)
    #: The ERP order number each opportunity shows now.
    shown: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self.read_once()

    def read_once(self) -> None:
        moment = time.monotonic()
        try:
            records = opportunities(self.sf, self.sf_url)
        except (requests.RequestException, ValueError):
            return
        for opp_id, record in records.items():
            if record.get(ORDER_FIELD) and opp_id not in self.first_seen:
                self.first_seen[opp_id] = moment
            if record.get(ORDER_FIELD):
                self.shown[opp_id] = str(record[ORDER_FIELD])


@dataclass(frozen=True)
class Records:
    """The final record the verdicts are drawn from."""

    designed: dict[str, str]
    opportunities: dict[str, dict[str, Any]]
    sales_orders: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    erp_stats: dict[str, Any]
    sf_stats: dict[str, Any]
    sf_deliveries: list[dict[str, Any]]
    #: Salesforce's product lines (what a churned opportunity's order must match).
    line_items: list[dict[str, Any]] = field(default_factory=list)


def designed_failures(sf: requests.Session, sf_url: str) -> dict[str, str]:
    """The opportunities the sandbox's world built to fail, and their categories."""
    answer = sf.get(f"{sf_url}/_sandbox/world", timeout=10)
    answer.raise_for_status()
    return {sfid.to18(k): v for k, v in answer.json()["expected_failures"].items()}


def collect(sf: requests.Session, sf_url: str, erp_url: str, env: dict[str, str]) -> Records:
    letters = dead_letters(env)
    deliveries = sf.get(f"{sf_url}/_sandbox/deliveries", timeout=30).json()
    return Records(
        designed=designed_failures(sf, sf_url),
        opportunities=opportunities(sf, sf_url),
        sales_orders=erp_documents(erp_url, "Sales Order"),
        dead_letters=letters if letters is not None else [],
        erp_stats=requests.get(f"{erp_url}/_sandbox/stats", timeout=10).json(),
        sf_stats=sf.get(f"{sf_url}/_sandbox/stats", timeout=10).json(),
        sf_deliveries=list(deliveries.get("attempts_log", [])),
        line_items=sf.get(f"{sf_url}/_sandbox/records/OpportunityLineItem", timeout=30).json())
