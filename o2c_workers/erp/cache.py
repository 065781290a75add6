"""ERP master data on the state Redis, shared by the fleet, for ``O2C_ERP_CACHE_TTL_S``.

One hash per kind (``keys.erp_cache``): known items, item prices (by currency), tax rates
(by country), customers (by account). A read is one ``HMGET`` (with the kind's epoch, in
the same round trip); a fill is one script that writes only if the epoch has not moved
since that read, so a fill that read the ERP before the change feed invalidated the kind
never writes the old value back after it. The hash expires ``ttl_s`` after its first
write: no entry is older than that.

The cache is a shortcut, never the truth: a Redis that fails or refuses is a miss (the ERP
is read), and a fill that fails is skipped. Only the change feed's invalidation must land
(``invalidate`` raises): a poll that cannot invalidate fails and its watermark stays.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import redis

from o2c_workers import keys, sfid

log = logging.getLogger("o2c.erp.cache")

ITEMS, PRICES, TAX, CUSTOMERS = "items", "prices", "tax", "customers"
KINDS = (ITEMS, PRICES, TAX, CUSTOMERS)

#: What a change of an ERPNext master document drops: the kind, and whether only that
#: document's own entry (an item by its code, a customer by its account) or the whole kind
#: (a price, price list, tax rule or template can change the answer for any field).
INVALIDATES: dict[str, tuple[str, bool]] = {
    "Item": (ITEMS, True),
    "Item Price": (PRICES, False),
    "Price List": (PRICES, False),
    "Tax Rule": (TAX, False),
    "Sales Taxes and Charges Template": (TAX, False),
    "Customer": (CUSTOMERS, True),
}

_FILL = """
local seen = redis.call('GET', KEYS[2]) or ''
if seen ~= ARGV[1] then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


@dataclass(frozen=True)
class Epoch:
    """The invalidation count of a kind when it was read (``""``: never invalidated)."""

    kind: str
    value: str


class MasterCache:
    """Master data by kind and field; strings in, strings out."""

    def __init__(self, client: redis.Redis, prefix: str, *, ttl_s: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._fill = client.register_script(_FILL)

    def get(self, kind: str, fields: Sequence[str]) -> tuple[dict[str, str], Epoch | None]:
        """The cached values of ``fields`` (absent: not cached), and the epoch to fill
        with; None (and nothing found) when Redis does not answer."""
        if not fields:
            return {}, None
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(keys.erp_cache_epoch(self.prefix, kind))
            pipe.hmget(keys.erp_cache(self.prefix, kind), list(fields))
            epoch, values = pipe.execute()
        except redis.RedisError as exc:
            log.warning("ERP cache unavailable, reading the ERP: %s", type(exc).__name__)
            return {}, None
        found = {f: _text(v) for f, v in zip(fields, values, strict=True) if v is not None}
        return found, Epoch(kind, _text(epoch) if epoch is not None else "")

    def fill(self, epoch: Epoch | None, values: Mapping[str, str]) -> bool:
        """Write ``values`` unless the kind was invalidated since ``epoch`` was read."""
        if epoch is None or not values:
            return False
        args: list[str | int] = [epoch.value, self.ttl_s]
        for field, value in values.items():
            args += [field, value]
        try:
            return bool(self._fill(keys=[keys.erp_cache(self.prefix, epoch.kind),
                                         keys.erp_cache_epoch(self.prefix, epoch.kind)],
                                   args=args))
        except redis.RedisError as exc:
            log.warning("ERP cache not filled: %s", type(exc).__name__)
            return False

    def invalidate(self, kind: str, fields: Iterable[str] | None = None) -> None:
        """Drop ``fields`` of ``kind`` (None: the whole kind) and move its epoch, in one
        transaction. Raises ``redis.RedisError``: the caller must not carry on as if the
        cache had forgotten."""
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(keys.erp_cache_epoch(self.prefix, kind))
        names = None if fields is None else sorted(set(fields))
        if names is None:
            pipe.delete(keys.erp_cache(self.prefix, kind))
        elif names:
            pipe.hdel(keys.erp_cache(self.prefix, kind), *names)
        pipe.execute()


    def forget(self, doctype: str, name: str, salesforce_id: str | None = None) -> bool:
        """Invalidate what the cache holds of a master document that changed (an item by
        its ``name``, a customer by its ``salesforce_id``); False for another DocType."""
        found = INVALIDATES.get(doctype)
        if found is None:
            return False
        kind, own = found
        if not own:
            self.invalidate(kind)
        elif kind == CUSTOMERS:
            self.invalidate(kind, [account_field(salesforce_id)] if salesforce_id else [])
        else:
            self.invalidate(kind, [name])
        return True


def account_field(salesforce_id: str) -> str:
    """The field of an account in ``customers``: its 18-character id."""
    return sfid.to18(salesforce_id) if sfid.is_valid(salesforce_id) else salesforce_id


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
