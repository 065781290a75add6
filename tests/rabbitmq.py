"""A RabbitMQ virtual host of its own for a test run: the machine's node, never restarted.

``O2C_TEST_AMQP_URL`` names the node (default ``amqp://guest:guest@127.0.0.1:5672``); each
run gets a fresh vhost (``rabbitmqctl add_vhost``), deleted afterwards, so runs side by side
and leftovers of a crashed run never meet. Tests that need RabbitMQ skip, saying why, only
when no node answers or ``rabbitmqctl`` cannot manage it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import pytest

from o2c_workers.dev.rabbitmq_runtime import DEFAULT_URL, answers

DEFAULT_NODE = DEFAULT_URL


class NoRabbitMQ(RuntimeError):
    """No RabbitMQ node to test on; the message says why."""


@dataclass(frozen=True)
class VirtualHost:
    node_url: str
    name: str

    @property
    def url(self) -> str:
        """The broker URL of this vhost (``O2C_BROKER_URL``)."""
        return f"{self.node_url.rstrip('/')}/{quote(self.name, safe='')}"


def node_url() -> str:
    return os.environ.get("O2C_TEST_AMQP_URL", DEFAULT_NODE)


def ctl(*args: str) -> str:
    """``rabbitmqctl`` against the local node; its output, or ``NoRabbitMQ``."""
    binary = shutil.which("rabbitmqctl")
    if binary is None:
        raise NoRabbitMQ("rabbitmqctl is not installed, so no vhost can be made")
    done = subprocess.run([binary, "-q", *args], capture_output=True, text=True, timeout=60,
                          check=False)
    if done.returncode != 0:
        raise NoRabbitMQ(f"rabbitmqctl {' '.join(args)} failed: "
                         f"{(done.stderr or done.stdout).strip()[:300]}")
    return done.stdout


@contextmanager
def virtual_host(prefix: str = "o2c-test") -> Iterator[VirtualHost]:
    """A new vhost on the node, the node's user given every permission on it."""
    url = node_url()
    if not answers(url):
        raise NoRabbitMQ(f"no RabbitMQ answers at {urlsplit(url).netloc.split('@')[-1]}")
    user = urlsplit(url).username or "guest"
    vhost = VirtualHost(url, f"{prefix}-{uuid.uuid4().hex[:10]}")
    ctl("add_vhost", vhost.name)
    try:
        ctl("set_permissions", "-p", vhost.name, user, ".*", ".*", ".*")
        yield vhost
    finally:
        ctl("delete_vhost", vhost.name)


def vhost_or_skip() -> Iterator[VirtualHost]:
    """A fixture's body: a new vhost, deleted after; the test skips, saying why, only when
    no RabbitMQ can be found."""
    made = virtual_host()
    try:
        vhost = made.__enter__()
    except NoRabbitMQ as exc:
        pytest.skip(f"RabbitMQ is needed: {exc}")
    try:
        yield vhost
    finally:
        made.__exit__(None, None, None)
