"""Wait for Ctrl-C or SIGTERM, whatever the process inherited for them.

A process started by one that ignores SIGINT (a background job of a non-interactive shell,
a parent inside ``system()``) inherits the ignoring, so Python raises no
``KeyboardInterrupt`` on Ctrl-C and a command that only catches it would run on. The
commands that hold a running stack (``o2c sandbox``, ``o2c demo --hold``) set both
handlers themselves and put the old ones back once stopped.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def wait_until_stopped(tick_s: float = 0.5) -> int:
    """Block until SIGINT or SIGTERM arrives; the signal's number."""
    stopping = threading.Event()
    got: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        got.append(signum)
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        while not stopping.wait(tick_s):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return got[0]
