"""CPU spent so far by processes (Linux ``/proc``) and by a Redis server (``INFO cpu``)."""

from __future__ import annotations

import os
from pathlib import Path

import redis


def stat_fields(pid: int | str) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, ...), or
    none where /proc cannot tell."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def children(pid: int) -> list[int]:
    """The direct children of ``pid``."""
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and stat_fields(entry.name)[1:2] == [str(pid)]]


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU of ``pids`` so far (0 where /proc cannot tell)."""
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in map(stat_fields, pids)
                if fields)
    return ticks / os.sysconf("SC_CLK_TCK")


def redis_cpu_seconds(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
