"""The ERP side: the ``ErpAdapter`` protocol and its Frappe/ERPNext implementation.

``build_adapter(settings, redis_client)`` gives a process its adapter, wired to the
fleet-wide limiter of ``O2C_ERP_RATE_LIMIT`` and ``O2C_ERP_MAX_CONCURRENCY``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from o2c_workers.erp.erpnext import ErpNextAdapter
from o2c_workers.erp.protocol import ErpAdapter
from o2c_workers.erp.retry import QuickRetry
from o2c_workers.ratelimit import Limiter

if TYPE_CHECKING:
    import redis

    from config.settings import Settings


def build_adapter(settings: Settings, redis_client: redis.Redis) -> ErpNextAdapter:
    """The ERPNext adapter of ``settings``, limited fleet-wide through ``redis_client``."""
    return ErpNextAdapter(settings, limiter=Limiter.from_settings(redis_client, settings))


__all__ = ["ErpAdapter", "ErpNextAdapter", "QuickRetry", "build_adapter"]
