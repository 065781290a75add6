"""o2c-workers: the opportunity-to-cash process between Salesforce and an ERP.

Importing the package builds nothing: ``o2c_workers.app`` (the fleet's Celery app, which
``celery -A o2c_workers`` finds) is built on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

    app: Celery

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from o2c_workers.celery_app import get_app

        return get_app()
    raise AttributeError(f"module 'o2c_workers' has no attribute {name!r}")
