"""ERP calls per booked order: what ``o2c demo --opportunities 100`` makes the ERP answer.

Runs the demo's own stack (``o2c_workers.demo.run``: the simulators, the receiver, one
worker per queue, the same seeded org), wins every opportunity, waits until the demo would
report, then reads the ERP simulator's record of every call (``/_sandbox/calls``) and its
documents. ``o2c reconcile`` is not run, so its reads are not counted.

Each call is put to booking or to the order's later life:

* master data and customers (``Customer``, ``Item``, ``Item Price``, ``Price List``,
  ``Tax Rule``, ``Sales Taxes and Charges Template``, the outstanding-amount method) and the
  ``POST`` of a Sales Order: booking;
* a Sales Order read that names an opportunity whose order was created after it: booking
  (the order step's look-up), else the life (status events);
* Sales Invoice and Payment Entry reads, a Sales Order read by name, the change feed's
  polls (a list call filtered on ``modified``): the life.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import requests
from rich.console import Console

from o2c_workers.demo.run import DemoOptions, running, watch

OPPORTUNITIES = 100
#: The Redis database the run owns (flushed at start); the demo's own by default.
BENCH_DB = int(os.environ.get("BENCH_REDIS_DB", "11"))
MASTERS = frozenset({"Customer", "Item", "Item Price", "Price List", "Tax Rule",
                     "Sales Taxes and Charges Template"})
_OPPORTUNITY = re.compile(r"006[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?")


@dataclass
class Tally:
    booked: int = 0
    won: int = 0
    book: Counter[str] = field(default_factory=Counter)
    life: Counter[str] = field(default_factory=Counter)

    @property
    def to_book(self) -> int:
        return sum(self.book.values())

    @property
    def whole_life(self) -> int:
        return self.to_book + sum(self.life.values())


def label(call: dict[str, Any]) -> tuple[str, str]:
    """``(METHOD resource, kind)``: a readable name of the call, and its shape."""
    path = unquote(call["path"])
    method = call["method"]
    if path.startswith("/api/method/"):
        return f"{method} {path.rsplit('.', 1)[-1]}", "method"
    parts = path.removeprefix("/api/resource/").split("/", 1)
    doctype = parts[0]
    if len(parts) > 1:
        return f"{method} {doctype}/{{name}}", "document"
    query = parse_qs(call.get("query") or "")
    filters = " ".join(query.get("filters", []) + query.get("or_filters", []))
    if method == "GET" and '["modified", ">' in filters.replace("'", '"'):
        return f"GET {doctype} (change feed)", "feed"
    return f"{method} {doctype}" + (" (list)" if method == "GET" else ""), "list"


def classify(calls: list[dict[str, Any]], created: dict[str, float]) -> Tally:
    """Each call to booking or to the life (see the module's docstring)."""
    tally = Tally()
    for call in calls:
        if not call["path"].startswith("/api/"):
            continue
        name, kind = label(call)
        doctype = unquote(call["path"]).removeprefix("/api/resource/").split("/", 1)[0]
        if kind == "method" or doctype in MASTERS or (doctype == "Sales Order"
                                                       and call["method"] == "POST"):
            tally.book[name] += 1
        elif doctype == "Sales Order" and kind == "list":
            ids = _OPPORTUNITY.findall(unquote(call.get("query") or ""))
            first = min((created.get(i[:15], float("inf")) for i in ids), default=0.0)
            (tally.book if call["time"] <= first else tally.life)[name] += 1
        else:
            tally.life[name] += 1
    return tally


def run() -> Tally:
    console = Console(stderr=True)
    opts = DemoOptions(opportunities=OPPORTUNITIES, redis_db=BENCH_DB)
    with running(opts, console) as demo:
        sandbox = demo.sandbox
        session = sandbox.salesforce.session()
        session.post(f"{sandbox.sf_url}/_sandbox/opportunities/win", json={"ids": "all"},
                     timeout=60).raise_for_status()
        snap = watch(demo, opts, console)
        time.sleep(1.0)
        calls = requests.get(f"{sandbox.erp_url}/_sandbox/calls", timeout=30).json()
        orders = requests.get(f"{sandbox.erp_url}/_sandbox/documents/Sales Order",
                              timeout=30).json()
    rows = calls.get("calls", calls) if isinstance(calls, dict) else calls
    created = {}
    for doc in orders.get("data", []):
        opportunity = str(doc.get("po_no") or "")[:15]
        stamp = epoch(doc.get("creation"))
        created[opportunity] = min(created.get(opportunity, stamp), stamp)
    tally = classify(rows, created)
    tally.booked, tally.won = snap.counts["booked"], snap.counts["won"]
    return tally


def epoch(value: Any) -> float:
    """A sandbox timestamp (the site's zone, UTC in the demo) as epoch seconds."""
    try:
        return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return float("inf")


def report(tally: Tally) -> str:
    lines = [f"won {tally.won}, booked {tally.booked}", "",
             "| calls (method, resource) | to book | later life |", "|---|---|---|"]
    for name in sorted(set(tally.book) | set(tally.life)):
        lines.append(f"| `{name}` | {tally.book.get(name, 0)} | {tally.life.get(name, 0)} |")
    lines.append(f"| **total** | **{tally.to_book}** | **{sum(tally.life.values())}** |")
    booked = max(tally.booked, 1)
    lines += ["", f"ERP calls per booked order: to book {tally.to_book / booked:.2f}, "
                  f"whole life {tally.whole_life / booked:.2f}"]
    return "\n".join(lines)


def main(*, quick: bool = False) -> None:
    tally = run()
    print(report(tally))
    print(json.dumps({"book": tally.book, "life": tally.life, "booked": tally.booked}))


if __name__ == "__main__":
    main()
