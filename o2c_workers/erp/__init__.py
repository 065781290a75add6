"""The ERP side: the ``ErpAdapter`` protocol and its Frappe/ERPNext implementation.

``build_adapter(settings, redis_client)`` gives a process its adapter, wired to the
fleet-wide limiter of ``O2C_ERP_RATE_LIMIT`` and ``O2C_ERP_MAX_CONCURRENCY``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from o2c_workers.erp.cache import MasterCache
from o2c_workers.erp.cached import CachedErp
from o2c_workers.erp.erpnext import ErpNextAdapter
from o2c_workers.erp.protocol import ErpAdapter
from o2c_workers.erp.retry import QuickRetry
from o2c_workers.erp.versions import Versions
from o2c_workers.ratelimit import Limiter

if TYPE_CHECKING:
    import redis

    from config.settings import Settings


def build_erpnext(settings: Settings, redis_client: redis.Redis) -> ErpNextAdapter:
    """The ERPNext adapter alone, every read asked of the ERP (``o2c reconcile``)."""
    return ErpNextAdapter(settings, limiter=Limiter.from_settings(redis_client, settings))


def build_adapter(settings: Settings, redis_client: redis.Redis) -> ErpAdapter:
    """The ERPNext adapter of ``settings``, limited fleet-wide through ``redis_client``, its
    master data cached there (``O2C_ERP_CACHE_TTL_S``; 0: not cached) and the versions of
    its documents noted there."""
    adapter = build_erpnext(settings, redis_client)
    if settings.erp_cache_ttl_s <= 0:
        return adapter
    prefix = settings.key_prefix
    return CachedErp(adapter, MasterCache(redis_client, prefix, ttl_s=settings.erp_cache_ttl_s),
                     Versions(redis_client, prefix, ttl_s=settings.dedupe_ttl_s))


__all__ = ["CachedErp", "ErpAdapter", "ErpNextAdapter", "QuickRetry", "build_adapter",
           "build_erpnext"]
