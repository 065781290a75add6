"""Where a paced order's time goes in our fleet, from its processes' own JSON log lines:
the receiver's ``notification enqueued`` and Celery's ``Task … received`` / ``succeeded``
of each step, joined on the opportunity (the task's short form names it)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

_TASK = re.compile(r"Task o2c\.\w+\.(?P<step>\w+)\[(?P<id>[^\]]+)\] "
                   r"(?P<what>received|succeeded)")
#: An opportunity id (key prefix 006) in a task's short form of its arguments.
_OPPORTUNITY = re.compile(r"\b(?P<id>006[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?)\b")

#: (label, from, to): the marks are ``enqueued`` and ``<step>:received|succeeded``.
SEGMENTS = (
    ("receiver enqueued → customer step taken", "enqueued", "ensure_customer:received"),
    ("customer step", "ensure_customer:received", "ensure_customer:succeeded"),
    ("→ pricing step taken", "ensure_customer:succeeded", "validate_order:received"),
    ("pricing step", "validate_order:received", "validate_order:succeeded"),
    ("→ order step taken", "validate_order:succeeded", "submit_order:received"),
    ("order step (lookup, submit)", "submit_order:received", "submit_order:succeeded"),
    ("receiver enqueued → submitted", "enqueued", "submit_order:succeeded"),
)


def _lines(log_dir: Path) -> list[dict[str, Any]]:
    out = []
    for log in sorted(log_dir.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out


def _at(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00")).timestamp()


def hops(log_dir: Path, ids: list[str]) -> dict[str, list[float]]:
    """Each segment's times in ms over the opportunities ``ids`` that passed every mark."""
    lines = _lines(log_dir)
    opportunity_of: dict[str, str] = {}
    for entry in lines:
        task = _TASK.match(str(entry.get("message", "")))
        if task and task["what"] == "received":
            found = _OPPORTUNITY.search(json.dumps(entry.get("data", {})))
            if found:
                opportunity_of[task["id"]] = found["id"]
    marks: dict[str, dict[str, float]] = {}
    for entry in lines:
        message = str(entry.get("message", ""))
        task = _TASK.match(message)
        if task:
            mark, opportunity = f"{task['step']}:{task['what']}", opportunity_of.get(task["id"])
        elif message.startswith("notification enqueued"):
            mark, opportunity = "enqueued", entry.get("trace_key")
        else:
            continue
        if opportunity:
            marks.setdefault(str(opportunity), {}).setdefault(mark, _at(entry))
    wanted = {m for _, a, b in SEGMENTS for m in (a, b)}
    done = [marks[i] for i in ids if wanted <= set(marks.get(i, {}))]
    return {label: [(m[b] - m[a]) * 1000 for m in done] for label, a, b in SEGMENTS}
