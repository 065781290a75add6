"""The catch-up sweep, sent by the beat process every ``O2C_SWEEP_INTERVAL_S``, and the ERP
change feed, every ``O2C_ERP_FEED_INTERVAL_S``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from o2c_workers import app, metrics
from o2c_workers.base_task import O2CTask
from o2c_workers.errors import O2CError
from o2c_workers.sweeps.erp_feed import ErpFeed
from o2c_workers.sweeps.run import run_sweeps
from o2c_workers.sweeps.state import SweepBusy
from o2c_workers.sweeps.sweeper import QuerySource, Sweeper

log = logging.getLogger("o2c.sweep")


@app.task(name="o2c.sweep.run", bind=True)
def run(self: O2CTask) -> dict[str, Any]:
    """Sweep Salesforce and re-drive stalled transactions. A failure waits for the next
    interval (recorded for ``o2c report`` and ``o2c_sweep_failing``); it is never retried
    or dead-lettered: the next run covers the same ground from the same watermark."""
    rt = self.runtime
    sweeper = Sweeper.build(rt.settings, redis_client=rt.redis, celery_app=self.app,
                            salesforce=cast(QuerySource, rt.salesforce))

    def sweep() -> dict[str, Any]:
        result = run_sweeps(sweeper)
        return {"started": sum(s.started for s in result.sweeps),
                "api_calls": result.api_calls}

    return _periodic("sweep", metrics.sweep_run, sweep)


@app.task(name="o2c.sweep.erp_feed", bind=True)
def erp_feed(self: O2CTask) -> dict[str, Any]:
    """Poll the ERP for changes since the feed's watermark. A failure waits for the next
    interval, as a sweep's does (the watermark has not moved)."""
    rt = self.runtime
    feed = ErpFeed.build(rt.settings, redis_client=rt.redis, celery_app=self.app, erp=rt.erp)

    def poll() -> dict[str, Any]:
        result = feed.run()
        return {"started": result.started, "api_calls": result.api_calls}

    return _periodic("change feed poll", metrics.erp_feed_run, poll)


def _periodic(what: str, count: Callable[[str], None],
              job: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One periodic job, its outcome counted (``ok``, ``busy``, ``failed``): skipped while
    another holds its lease; a failure logged and left to the next interval."""
    try:
        answer = job()
    except SweepBusy:
        count("busy")
        log.info("another %s holds the lease; this one is skipped", what)
        return {"skipped": "busy"}
    except O2CError as exc:
        count("failed")
        log.error("%s failed, the next one tries again: %s", what, exc,
                  extra={"reason": exc.reason})
        return {"failed": type(exc).__name__}
    count("ok")
    return answer
