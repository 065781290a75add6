"""``wait_until_stopped``: Ctrl-C or SIGTERM ends the wait even where SIGINT was inherited
ignored, and the process's own handlers come back afterwards."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from o2c_workers.cli.until_stopped import wait_until_stopped


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_the_wait_even_when_it_was_ignored(sig: int) -> None:
    before = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        sender = threading.Timer(0.2, os.kill, args=(os.getpid(), sig))
        sender.start()
        assert wait_until_stopped() == sig
        sender.join()
        # What was there before the wait is there again.
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
