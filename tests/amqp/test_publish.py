"""The publisher: confirmed batches on the real node, the message Celery itself publishes, and
every way RabbitMQ can fail to confirm (a nack, a lost connection, no answer, a vhost gone)."""

from __future__ import annotations

import time

import pytest

from config import Settings, load_settings
from o2c_workers import app as celery_app
from o2c_workers.amqp.publish import CONFIRM_TIMEOUT_S, Publisher
from o2c_workers.broker import publisher as fleet_publisher
from o2c_workers.celery_app import celery_config, create_app
from o2c_workers.enqueue import MessageFactory
from o2c_workers.infrastructure import BrokerUnavailable, is_infrastructure
from tests.amqp.conftest import Broker, amqp_port, via
from tests.proxy import TcpProxy
from tests.rabbitmq import VirtualHost, ctl, virtual_host

FACTORY = MessageFactory(celery_app)


def probe(queue: str, n: int = 1):
    return FACTORY.build(f"o2c.{queue}.probe_step", args=[{"trace_key": f"probe:{n}"}],
                         trace_key=f"probe:{n}")


def test_a_batch_is_on_its_queues_once_publish_returns(broker: Broker, publisher: Publisher):
    publisher.publish([probe("customer", 1), probe("order", 2), probe("customer", 3)])
    assert broker.count("customer") == 2
    assert broker.count("order") == 1
    publisher.publish([probe("pricing", 4)])  # the connection is reused
    assert [m["headers"]["trace_key"] for m in broker.take("customer")] == ["probe:1",
                                                                            "probe:3"]
    assert broker.count("pricing") == 1


def test_acks_that_come_while_a_batch_is_sent_count(broker: Broker, publisher: Publisher):
    """py-amqp reads the broker's frames before each publish, so the first messages' acks
    often arrive while the rest of a batch is still being sent (they were once dropped,
    and a publish timed out waiting for them)."""
    for n in range(300):
        publisher.publish([probe("customer", n), probe("order", n), probe("invoice", n)])
    assert broker.counts() == {"customer": 300, "pricing": 0, "order": 300, "invoice": 300,
                               "payment": 0, "sweep": 0}


def test_the_message_is_the_one_celery_publishes(broker: Broker, publisher: Publisher,
                                                 amqp_settings: Settings):
    app = create_app()
    app.conf.update(celery_config(amqp_settings))
    app.loader.import_default_modules()
    try:
        app.tasks["o2c.customer.ensure_customer"].apply_async(
            args=[{"trace_key": "celery"}],
            chain=[app.signature("o2c.pricing.validate_order", options={"queue": "pricing"})])
    finally:
        app.close()
    ours = FACTORY.build("o2c.customer.ensure_customer", args=[{"trace_key": "ours"}],
                         trace_key="ours", then=["o2c.pricing.validate_order"])
    publisher.publish([ours])
    theirs, mine = broker.take("customer")
    assert (mine["exchange"], mine["routing_key"]) == (theirs["exchange"],
                                                       theirs["routing_key"]) == ("o2c",
                                                                                  "customer")
    # reply_to: Celery names its process there for results; the fleet keeps none.
    for name in ("content_type", "content_encoding", "delivery_mode"):
        assert mine["properties"].get(name) == theirs["properties"].get(name), name
    assert mine["properties"]["correlation_id"] == ours.task_id == mine["headers"]["id"]
    # timelimit: Celery copies the app's limits in; without them the worker applies the
    # same ones (task_time_limit), as for every message on Redis.
    differ = {"id", "root_id", "argsrepr", "kwargsrepr", "origin", "trace_key", "timelimit"}
    assert set(mine["headers"]) - {"trace_key"} == set(theirs["headers"])
    assert {k: v for k, v in mine["headers"].items() if k not in differ} == \
        {k: v for k, v in theirs["headers"].items() if k not in differ}
    assert mine["kwargs"] == theirs["kwargs"] == {}
    assert [s["task"] for s in mine["embed"]["chain"]] == \
        [s["task"] for s in theirs["embed"]["chain"]] == ["o2c.pricing.validate_order"]


def test_a_broker_failure_is_infrastructure():
    assert is_infrastructure(BrokerUnavailable("no confirm", reason="timeout"))


@pytest.fixture
def own_vhost() -> VirtualHost:
    with virtual_host(prefix="o2c-test-publish") as vhost:
        yield vhost


def fill(publisher: Publisher, vhost: VirtualHost, queue: str) -> int:
    """Give ``queue`` a length limit (a policy) and publish until it nacks: a queue at its
    limit under the topology's ``x-overflow: reject-publish`` refuses what comes next.
    Returns how many it kept."""
    publisher.publish([probe("customer", 99)])  # a first connection declares the queues
    Broker(vhost.url).take("customer")
    ctl("set_policy", "-p", vhost.name, "--apply-to", "queues", "full", f"^{queue}$",
        '{"max-length": 1}')
    deadline = time.monotonic() + 30
    while "full" not in ctl("list_queues", "-p", vhost.name, "name", "policy"):
        assert time.monotonic() < deadline, "the policy was never applied"
        time.sleep(0.2)
    for n in range(10):
        try:
            publisher.publish([probe(queue, 100 + n)])
        except BrokerUnavailable as exc:
            assert exc.reason == "nacked"
            return Broker(vhost.url).count(queue)
    raise AssertionError(f"{queue} never reached its limit")


def unfill(publisher: Publisher, vhost: VirtualHost, queue: str) -> None:
    ctl("clear_policy", "-p", vhost.name, "full")
    Broker(vhost.url).take(queue)
    deadline = time.monotonic() + 30
    while True:
        try:
            publisher.publish([probe(queue, 200)])
            break
        except BrokerUnavailable:
            assert time.monotonic() < deadline, "the queue never took messages again"
            time.sleep(0.2)
    Broker(vhost.url).take(queue)


@pytest.mark.slow
def test_a_nack_is_broker_unavailable(own_vhost: VirtualHost):
    publisher = Publisher(own_vhost.url)
    broker = Broker(own_vhost.url)
    kept = fill(publisher, own_vhost, "order")
    with pytest.raises(BrokerUnavailable) as refused:
        publisher.publish([probe("customer", 2), probe("order", 3)])
    assert refused.value.reason == "nacked"
    assert broker.count("order") == kept
    unfill(publisher, own_vhost, "order")
    publisher.publish([probe("order", 4)])
    assert broker.count("order") == 1
    publisher.close()


@pytest.mark.slow
def test_a_message_no_queue_takes_is_broker_unavailable(own_vhost: VirtualHost):
    """``mandatory``: a queue deleted under a running publisher (its binding gone with it)
    makes RabbitMQ return the message rather than drop it."""
    publisher = Publisher(own_vhost.url)
    publisher.publish([probe("customer", 1)])
    ctl("delete_queue", "-p", own_vhost.name, "order")
    with pytest.raises(BrokerUnavailable) as returned:
        publisher.publish([probe("order", 2)])
    assert returned.value.reason == "returned"
    assert "order" in str(returned.value)
    publisher.publish([probe("order", 3)])  # a new connection declares the queue again
    assert [m["headers"]["trace_key"] for m in Broker(own_vhost.url).take("order")] == \
        ["probe:3"]
    publisher.close()


def test_a_lost_connection_is_broker_unavailable_until_it_is_back(broker: Broker,
                                                                  amqp_url: str):
    proxy = TcpProxy(amqp_port(amqp_url))
    publisher = Publisher(via(amqp_url, proxy.port))
    try:
        publisher.publish([probe("customer", 1)])
        proxy.cut()
        with pytest.raises(BrokerUnavailable) as lost:
            publisher.publish([probe("customer", 2)])
        assert lost.value.reason == "connection"
        assert "guest:guest" not in str(lost.value)
        proxy.restore()
        publisher.publish([probe("customer", 3)])
    finally:
        publisher.close()
        proxy.close()
    assert [m["headers"]["trace_key"] for m in broker.take("customer")] == ["probe:1",
                                                                            "probe:3"]


def test_a_connection_idle_past_its_limit_is_not_reused(broker: Broker, amqp_url: str):
    """Without heartbeats a load balancer may drop an idle connection unseen; past
    ``idle_limit_s`` (the subject here, 60 s as shipped) a publish takes a new one."""
    proxy = TcpProxy(amqp_port(amqp_url))
    publisher = Publisher(via(amqp_url, proxy.port), idle_limit_s=0.5)
    try:
        publisher.publish([probe("customer", 1)])
        publisher.publish([probe("customer", 2)])
        assert proxy.accepted == 1
        time.sleep(0.6)
        publisher.publish([probe("customer", 3)])
        assert proxy.accepted == 2
    finally:
        publisher.close()
        proxy.close()
    assert broker.count("customer") == 3


@pytest.mark.slow
def test_no_confirm_in_time_is_broker_unavailable(broker: Broker, amqp_url: str):
    proxy = TcpProxy(amqp_port(amqp_url))
    publisher = Publisher(via(amqp_url, proxy.port))
    try:
        publisher.publish([probe("customer", 1)])
        proxy.freeze()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable) as late:
            publisher.publish([probe("customer", 2)])
        assert late.value.reason == "timeout"
        assert CONFIRM_TIMEOUT_S <= time.monotonic() - started < CONFIRM_TIMEOUT_S + 2
        proxy.restore()
        publisher.publish([probe("customer", 3)])  # a new connection
    finally:
        publisher.close()
        proxy.close()


@pytest.mark.slow
def test_a_deleted_vhost_refuses_until_it_is_made_again(own_vhost: VirtualHost):
    publisher = Publisher(own_vhost.url)
    publisher.publish([probe("customer", 1)])
    ctl("delete_vhost", own_vhost.name)
    try:
        with pytest.raises(BrokerUnavailable) as gone:
            publisher.publish([probe("customer", 2)])
        assert gone.value.reason == "connection"
    finally:
        ctl("add_vhost", own_vhost.name)
        ctl("set_permissions", "-p", own_vhost.name, "guest", ".*", ".*", ".*")
    # The new connection declares the queues again before it publishes.
    publisher.publish([probe("customer", 3)])
    assert [m["headers"]["trace_key"] for m in Broker(own_vhost.url).take("customer")] == \
        ["probe:3"]
    publisher.close()


def test_the_settings_timeouts_reach_the_fleets_publisher(broker: Broker, amqp_url: str,
                                                          redis_url: str):
    """``O2C_AMQP_CONFIRM_TIMEOUT_S`` and ``O2C_AMQP_IDLE_LIMIT_S`` (the subjects here) are
    the timeouts of the publisher every enqueue path takes (``o2c_workers.broker``)."""
    proxy = TcpProxy(amqp_port(amqp_url))
    settings = load_settings(redis_url=redis_url, broker_url=via(amqp_url, proxy.port),
                             amqp_confirm_timeout_s=0.5, amqp_idle_limit_s=0.4)
    publisher = fleet_publisher(settings)
    assert publisher is not None and fleet_publisher(settings) is publisher
    try:
        publisher.publish([probe("customer", 1)])
        time.sleep(0.5)
        publisher.publish([probe("customer", 2)])  # idle past its limit: a new connection
        assert proxy.accepted == 2
        proxy.freeze()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match=r"did not confirm within 0\.5 s") as late:
            publisher.publish([probe("customer", 3)])
        assert late.value.reason == "timeout"
        assert 0.5 <= time.monotonic() - started < CONFIRM_TIMEOUT_S
    finally:
        proxy.restore()
        publisher.close()
        proxy.close()
    shipped = fleet_publisher(load_settings(redis_url=redis_url, broker_url=amqp_url))
    assert shipped is not None
    assert (shipped.confirm_timeout_s, shipped.idle_limit_s) == (CONFIRM_TIMEOUT_S, 60.0)
