"""Loaded into a test worker: Celery gives up publishing after two retries, not thirty, so
that a test sees what follows the last retry within a second."""

from __future__ import annotations

from o2c_workers import app

app.conf.task_publish_retry_policy = {"max_retries": 2, "interval_start": 0.1,
                                      "interval_step": 0.1, "interval_max": 0.2}
