"""The test vhost is a real, usable and private RabbitMQ virtual host."""

from __future__ import annotations

import pytest
from kombu import Connection

from tests.rabbitmq import ctl


@pytest.mark.slow
def test_the_vhost_takes_a_message_and_is_listed(amqp_url, rabbitmq_vhost):
    with Connection(amqp_url) as conn:
        queue = conn.SimpleQueue("probe")
        queue.put({"n": 1})
        assert queue.get(timeout=5).payload == {"n": 1}
        queue.close()
    assert rabbitmq_vhost.name in ctl("list_vhosts").split()
