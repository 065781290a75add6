"""The one rule for the broker, as every process reads it with its settings."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from config import ConfigError, Settings, load_settings

SAME_SERVER = [
    ("redis://localhost:6379", "redis://127.0.0.1:6379/0"),
    ("redis://127.0.0.1:6379/3", "redis://localhost/3"),
    ("redis://:s3cret@127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
    ("redis://user:s3cret@Redis.Example.com:6380/1", "rediss://other:pw@redis.example.com:6380/1"),
    ("redis://[::1]:6379/0", "redis://localhost:6379"),
    ("sentinel://:s3cret@s1:26379,s2:26379/2?master=o2c",
     "sentinel://:other@s2,s1:26379/2?master=o2c"),
]


@pytest.mark.parametrize(("state", "broker"), SAME_SERVER)
def test_the_same_server_and_database_however_spelt_is_accepted(state, broker):
    settings = load_settings(redis_url=state, broker_url=broker)
    assert settings.effective_broker_url == broker


@pytest.mark.parametrize("unset", [None, ""])
def test_no_broker_url_means_the_state_redis(unset):
    settings = load_settings(redis_url="redis://127.0.0.1:6379/5", broker_url=unset)
    assert settings.effective_broker_url == "redis://127.0.0.1:6379/5"


REFUSED = {
    "another database": ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"),
    "another port": ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6380/0"),
    "another host": ("redis://127.0.0.1:6379/0", "redis://redis-2.internal:6379/0"),
    "sentinel broker, server state": ("redis://127.0.0.1:6379/0",
                                      "sentinel://:s3cret@127.0.0.1:26379/0?master=o2c"),
    "server broker, sentinel state": ("sentinel://:s3cret@127.0.0.1:26379/0?master=o2c",
                                      "redis://:s3cret@127.0.0.1:6379/0"),
    "another sentinel master": ("sentinel://:s3cret@s1:26379/0?master=o2c",
                                "sentinel://:s3cret@s1:26379/0?master=other"),
    "another sentinel database": ("sentinel://:s3cret@s1:26379/0?master=o2c",
                                  "sentinel://:s3cret@s1:26379/1?master=o2c"),
    "other sentinels": ("sentinel://:s3cret@s1:26379/0?master=o2c",
                        "sentinel://:s3cret@s9:26379/0?master=o2c"),
    "unknown scheme": ("redis://127.0.0.1:6379/0", "sqs://key:s3cret@"),
    "db in the query": ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379?db=0"),
}


@pytest.mark.parametrize(("state", "broker"), REFUSED.values(), ids=REFUSED.keys())
def test_a_broker_the_fleet_cannot_serve_is_refused_naming_both_variables(state, broker):
    with pytest.raises(ConfigError) as refused:
        load_settings(redis_url=state, broker_url=broker)
    message = str(refused.value)
    assert "O2C_BROKER_URL" in message and "O2C_REDIS_URL" in message
    assert "s3cret" not in message


def test_the_refusal_says_what_would_work():
    with pytest.raises(ConfigError, match="unset O2C_BROKER_URL"):
        load_settings(broker_url="redis://127.0.0.1:6379/9")
    with pytest.raises(ConfigError, match=r"or a RabbitMQ broker \(amqp://"):
        load_settings(broker_url="kafka://127.0.0.1:9092")


RABBITMQ = ["amqp://guest:s3cret@127.0.0.1:5672//", "pyamqp://guest:s3cret@127.0.0.1//",
            "amqps://o2c:s3cret@rabbit.internal:5671/o2c"]


@pytest.mark.parametrize("broker", RABBITMQ)
@pytest.mark.parametrize("state", ["redis://127.0.0.1:6379/3",
                                   "sentinel://:s3cret@s1:26379,s2:26379/2?master=o2c"])
def test_rabbitmq_is_a_broker_beside_any_redis_state(state, broker):
    settings = load_settings(redis_url=state, broker_url=broker)
    assert settings.broker_kind == "amqp"
    assert load_settings(redis_url=state).broker_kind == "redis"


def test_rabbitmq_still_needs_a_redis_for_the_state():
    with pytest.raises(ConfigError, match="O2C_REDIS_URL must be a Redis URL"):
        load_settings(redis_url="amqp://guest:guest@127.0.0.1//",
                      broker_url="amqp://guest:guest@127.0.0.1//")


STATE_REFUSED = {
    "sentinel without its master": "sentinel://:s3cret@127.0.0.1:26379",
    "sentinel with a bad port": "sentinel://:s3cret@127.0.0.1:port/0?master=o2c",
    "unix socket (the broker cannot read it)": "unix:///run/redis/redis.sock?db=0",
    "not a url": "127.0.0.1:6379",
    "db in the query": "redis://:s3cret@127.0.0.1:6379?db=2",
}


@pytest.mark.parametrize("state", STATE_REFUSED.values(), ids=STATE_REFUSED.keys())
def test_a_state_url_the_fleet_cannot_serve_is_refused(state):
    with pytest.raises(ConfigError, match="O2C_REDIS_URL") as refused:
        load_settings(redis_url=state)
    assert "s3cret" not in str(refused.value)


def test_building_settings_directly_refuses_too_without_printing_the_password():
    with pytest.raises(ConfigError) as refused:
        Settings(redis_url="redis://:s3cret@127.0.0.1:6379/0",
                 broker_url="redis://:s3cret@127.0.0.1:6379/1",
                 webhook_token=SecretStr("t"))
    assert "s3cret" not in str(refused.value) and "s3cret" not in repr(refused.value)


def test_the_environment_is_read_the_same_way(monkeypatch):
    monkeypatch.setenv("O2C_REDIS_URL", "redis://127.0.0.1:6379/4")
    monkeypatch.setenv("O2C_BROKER_URL", "redis://localhost:6379/4")
    assert load_settings().effective_broker_url == "redis://localhost:6379/4"
    monkeypatch.setenv("O2C_BROKER_URL", "redis://localhost:6379/5")
    with pytest.raises(ConfigError, match="database 5"):
        load_settings()
