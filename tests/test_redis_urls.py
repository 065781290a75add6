"""``sentinel://`` URLs: read, refused with a reason, and handed to kombu and RedBeat."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings
from o2c_workers.celery_app import RELIABLE_SENTINEL_TRANSPORT, celery_config
from o2c_workers.redis_urls import SentinelUrl, is_sentinel


def test_a_full_url_is_read() -> None:
    url = SentinelUrl.parse(
        "sentinel://app:p%40ss@s1:26379,s2:26380,[::1]/3?master=o2c&sentinel_password=sp")
    assert url.sentinels == (("s1", 26379), ("s2", 26380), ("::1", 26379))
    assert (url.master, url.db, url.username, url.password) == ("o2c", 3, "app", "p@ss")
    assert url.sentinel_kwargs() == {"password": "sp"}


def test_the_defaults_are_database_0_the_sentinel_port_and_no_credentials() -> None:
    url = SentinelUrl.parse("sentinel://s1?master=o2c")
    assert (url.sentinels, url.db, url.username, url.password, url.sentinel_kwargs()) == \
        ((("s1", 26379),), 0, None, None, None)


@pytest.mark.parametrize(("url", "reason"), [
    ("sentinel://s1:26379/0", "?master=NAME"),
    ("sentinel://s1:26379/0?master=", "?master=NAME"),
    ("sentinel://s1:port/0?master=o2c", "not a port number"),
    ("sentinel://s1:26379,,s2/0?master=o2c", "empty"),
    ("sentinel://s1/zero?master=o2c", "a number"),
    ("sentinel://s1/0?master=o2c&service=x", "unknown parameter(s) service"),
])
def test_a_malformed_url_says_what_is_wrong(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("?", r"\?").replace("(", r"\(")
                       .replace(")", r"\)")):
        SentinelUrl.parse(url)


def test_settings_refuse_a_malformed_url_naming_the_variable_and_not_the_password() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(broker_url="sentinel://:hunter2@s1:26379/0")
    assert "O2C_BROKER_URL" in str(refused.value) and "master" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_kombu_gets_its_own_form_and_the_master_name() -> None:
    settings = load_settings(redis_url="sentinel://:p%40ss@s1:26379,s2:26380/2?master=o2c")
    config = celery_config(settings)
    assert config["broker_url"] == "sentinel://:p%40ss@s1:26379/2;sentinel://:p%40ss@s2:26380/2"
    assert config["broker_transport"] == RELIABLE_SENTINEL_TRANSPORT
    assert config["broker_transport_options"]["master_name"] == "o2c"
    assert config["redbeat_redis_url"] == "redis-sentinel://"
    assert config["redbeat_redis_options"] == {
        "sentinels": [("s1", 26379), ("s2", 26380)], "service_name": "o2c", "db": 2,
        "password": "p@ss", "socket_timeout": 5.0}


def test_the_stock_transport_behind_sentinel_when_reliable_delivery_is_off() -> None:
    settings = load_settings(redis_url="sentinel://s1/0?master=o2c", reliable_delivery=False)
    assert celery_config(settings)["broker_transport"] is None  # kombu's, by the scheme


def test_a_server_url_is_left_as_it_is() -> None:
    config = celery_config(load_settings(redis_url="redis://cache:6379/4"))
    assert config["broker_url"] == "redis://cache:6379/4"
    assert config["redbeat_redis_url"] == "redis://cache:6379/4"
    assert "master_name" not in config["broker_transport_options"]
    assert not is_sentinel("redis://cache:6379/4")


def test_the_same_master_is_the_same_database_whatever_the_order_of_sentinels() -> None:
    one = SentinelUrl.parse("sentinel://:a@s1,s2/0?master=o2c")
    other = SentinelUrl.parse("sentinel://:b@s2:26379,s1/0?master=o2c")
    assert one.identity() == other.identity()
    assert one.identity() != SentinelUrl.parse("sentinel://s1,s2/1?master=o2c").identity()
