"""``make test`` finds the RabbitMQ node, or says why the RabbitMQ tests will skip."""

from __future__ import annotations

from o2c_workers.dev.rabbitmq_runtime import answers, ensure_rabbitmq
from o2c_workers.dev.redis_runtime import free_port
from tests.rabbitmq import node_url


def test_a_node_that_answers_is_used_as_it_is():
    if not answers(node_url()):
        assert "skip" in ensure_rabbitmq(node_url(), timeout_s=0)
        return
    assert ensure_rabbitmq(node_url()).startswith("RabbitMQ answers at 127.0.0.1")


def test_without_a_node_or_a_server_to_start_it_says_the_tests_skip(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}"
    said = ensure_rabbitmq(url)
    assert "rabbitmq-server is not installed" in said and "skip" in said
    assert "guest:guest" not in said
