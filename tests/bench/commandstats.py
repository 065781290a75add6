"""Redis commands counted by the server (``INFO commandstats``), commands run inside Lua
scripts included."""

from __future__ import annotations

from collections import Counter

import redis


def calls(client: redis.Redis) -> Counter[str]:
    """Calls per command name (lower case) since the last ``CONFIG RESETSTAT``."""
    raw = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(stats["calls"])
                    for name, stats in raw.items()})


def per_unit(counts: Counter[str], units: int) -> dict[str, float]:
    """Calls per unit of work, largest first."""
    return {name: n / units for name, n in counts.most_common() if n > 0}
