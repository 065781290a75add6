"""Find a RabbitMQ node to use, or start the local one: for ``make test`` and ``.ci/run``.

Unlike Redis, RabbitMQ is not started privately per run (a node takes seconds to boot and
owns its data directory): when ``rabbitmq-server`` is installed and nothing answers, the
machine's node is started once (``rabbitmq-server -detached``) and left running. Tests make
a vhost of their own on it (``tests/rabbitmq.py``) and never restart it.

``python -m o2c_workers.dev.rabbitmq_runtime`` does that and says what it found; it exits 0
either way (tests that need RabbitMQ then skip, saying why).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672"
#: How long a node started here may take to answer.
START_TIMEOUT_S = 60.0


def answers(url: str, *, timeout_s: float = 1.0) -> bool:
    """Whether something accepts connections at the AMQP port of ``url``."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672),
                                      timeout=timeout_s):
            return True
    except OSError:
        return False


def ensure_rabbitmq(url: str | None = None, *, timeout_s: float = START_TIMEOUT_S) -> str:
    """Make sure a node answers at ``url`` (``O2C_TEST_AMQP_URL``, else the local default);
    a line saying what was found or done."""
    url = url or os.environ.get("O2C_TEST_AMQP_URL") or DEFAULT_URL
    where = urlsplit(url).netloc.split("@")[-1]
    if answers(url):
        return f"RabbitMQ answers at {where}"
    server = shutil.which("rabbitmq-server")
    if server is None:
        return (f"no RabbitMQ at {where} and rabbitmq-server is not installed: the RabbitMQ "
                "tests will skip")
    subprocess.run([server, "-detached"], check=False, capture_output=True, timeout=60)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers(url):
            return f"started RabbitMQ ({server} -detached) at {where}"
        time.sleep(0.5)
    return f"started {server} -detached but nothing answers at {where}: the RabbitMQ tests " \
           "will skip"


if __name__ == "__main__":  # pragma: no cover - a command for the Makefile
    print(ensure_rabbitmq(sys.argv[1] if len(sys.argv) > 1 else None))
