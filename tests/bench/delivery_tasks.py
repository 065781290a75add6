"""Tasks of the delivery benchmark: a no-op, and a four-step chain across the domain queues.

They run on the app's default task class, the fleet's base task ``O2CTask``, so each one
carries the fleet's real per-task bookkeeping (the trace key bound to logs on prerun and
cleared on postrun, the task metrics, late acks). A finished no-op, and the last step of a
chain, counts itself with one ``INCR``; the counts listed in the payload's ``marks`` also
record the moment they were reached, so the benchmark times the run from inside it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from celery import signals

from o2c_workers import app

DONE_KEY = "bench:delivery:done"
#: Hash: a count listed in a payload's ``marks`` → epoch seconds when it was reached.
MARKS_KEY = "bench:delivery:marks"

NOOP = "o2c.order.bench_noop"
#: customer → pricing → order → order write-back, as the O2C chain runs.
CHAIN = ("o2c.customer.bench_step", "o2c.pricing.bench_step", "o2c.order.bench_step",
         "o2c.order.bench_write_back")


def count_done(task: Any, payload: dict[str, Any]) -> int:
    client = task.runtime.redis
    done = int(client.incr(DONE_KEY))
    if done in payload.get("marks", ()):
        client.hset(MARKS_KEY, str(done), repr(time.time()))
    return done


@app.task(name=NOOP, bind=True)
def noop(self: Any, payload: dict[str, Any]) -> None:
    count_done(self, payload)


@app.task(name=CHAIN[0], bind=True)
def customer_step(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    return payload


@app.task(name=CHAIN[1], bind=True)
def pricing_step(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    return payload


@app.task(name=CHAIN[2], bind=True)
def order_step(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    return payload


@app.task(name=CHAIN[3], bind=True)
def write_back_step(self: Any, payload: dict[str, Any]) -> None:
    count_done(self, payload)


#: The last step of the real O2C chain, counted by the handler below (its task is the
#: fleet's own, so the count cannot live in its body).
O2C_LAST = "o2c.order.write_back"
#: The round's marks for the O2C chain, as JSON: its context is the fleet's typed one, which
#: takes no keys of ours, so the marks wait in Redis.
O2C_MARKS_KEY = "bench:delivery:o2c-marks"


@signals.task_postrun.connect
def count_o2c_chain(task: Any = None, state: str | None = None,
                    args: tuple[Any, ...] | None = None, **_: Any) -> None:
    """Count a benchmark chain's write-back once it succeeded."""
    if getattr(task, "name", None) != O2C_LAST or state != "SUCCESS" or not args:
        return
    marks = task.runtime.redis.get(O2C_MARKS_KEY)
    if marks is not None:
        count_done(task, {"marks": json.loads(marks)})
