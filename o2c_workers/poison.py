"""Poison messages: a message whose step keeps killing the process that runs it.

Celery hands such a message back after every lost worker (``task_reject_on_worker_lost``),
and so does the reliable transport after a whole node dies: without a count it loops
forever. The count lives in Redis (``keys.worker_lost``), keyed by task id, so it survives
the crash itself: each run adds one before its step starts and removes the key when the run
ends in any way (success, retry, dead letter, the message handed back). What is left at the
next start is the number of runs that died. The worker's main process, when it sees a pool
process die, notes the exit (``Worker exited prematurely: signal 9 (SIGKILL)``) on the same
key; when the whole node died nobody sees it, and the count alone speaks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

import redis
from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import WorkerLostError
from celery.worker.request import Request

from o2c_workers import keys
from o2c_workers.runtime import get_runtime

log = logging.getLogger("o2c.poison")

#: A count nobody comes back for (the message was purged) is dropped after this long;
#: every start renews it.
WORKER_LOST_TTL_S = 24 * 3600


@dataclass(frozen=True)
class Runs:
    """What is known of a message's earlier runs when a new one starts."""

    #: Runs that started and never ended: their process died.
    lost: int
    #: How the last one died, as the worker's main process saw it (None: not seen).
    last_exit: str | None


def started(client: redis.Redis, prefix: str, task_id: str) -> Runs:
    """Count this run in before its step starts."""
    key = keys.worker_lost(prefix, task_id)
    pipe = client.pipeline(transaction=True)
    pipe.hincrby(key, "runs", 1)
    pipe.hget(key, "exit")
    pipe.expire(key, WORKER_LOST_TTL_S)
    runs, last_exit, _ = pipe.execute()
    return Runs(lost=int(runs) - 1, last_exit=last_exit.decode() if last_exit else None)


def peek(client: redis.Redis, prefix: str, task_id: str) -> Runs | None:
    """What is known of a message's runs, counting none in (None: no run left a count)."""
    runs, last_exit = cast("list[bytes | None]",
                           client.hmget(keys.worker_lost(prefix, task_id), ["runs", "exit"]))
    if runs is None and last_exit is None:
        return None
    return Runs(lost=int(runs or 0), last_exit=last_exit.decode() if last_exit else None)


def finished(client: redis.Redis, prefix: str, task_id: str) -> None:
    """The run ended without its process dying: nothing of it is left to count."""
    client.delete(keys.worker_lost(prefix, task_id))


def note_exit(client: redis.Redis, prefix: str, task_id: str, exit_text: str) -> None:
    """Record how the process running ``task_id`` died (the main process saw it)."""
    key = keys.worker_lost(prefix, task_id)
    pipe = client.pipeline(transaction=True)
    pipe.hset(key, "exit", exit_text)
    pipe.expire(key, WORKER_LOST_TTL_S)
    pipe.execute()


class LostWorkerRequest(Request):  # type: ignore[misc]
    """Celery's request, which also notes a lost pool process's exit on the message's count
    (in the worker's main process, before Celery hands the message back)."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> Any:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, WorkerLostError):
            runtime = get_runtime()
            try:
                note_exit(runtime.redis, runtime.prefix, str(self.id), str(exc))
            except redis.RedisError as store_error:
                log.warning("cannot note the lost worker of %s: %s", self.id, store_error)
        return super().on_failure(exc_info, send_failed_event=send_failed_event,
                                  return_ok=return_ok)
