"""Which processes hold an established TCP connection on a port (Linux ``/proc``).

The receiver's gunicorn workers share one listening socket; the one holding Salesforce's
kept-alive connection is the one that takes its next delivery.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The ``st`` column of /proc/net/tcp for an established connection.
_ESTABLISHED = "01"


def _established(port: int) -> dict[str, int]:
    """Socket inode → bytes received and not yet read, for established connections whose
    own (server) port is ``port``."""
    found: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            if local_port == port and cols[3] == _ESTABLISHED:
                found[cols[9]] = int(cols[4].split(":")[1], 16)
    return found


def _socket_inodes(pid: int) -> set[str]:
    found: set[str] = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def unread(pids: list[int], port: int) -> dict[int, int]:
    """For each pid, the most bytes waiting unread on one of its established connections on
    ``port`` (0 when none): a request it has been sent and not yet taken."""
    conns = _established(port)
    return {pid: max([conns[i] for i in _socket_inodes(pid) if i in conns], default=0)
            for pid in pids}
