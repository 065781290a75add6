"""The RabbitMQ publisher's timeouts as settings: shipped defaults, and bad values refused."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings
from o2c_workers.amqp.publish import CONFIRM_TIMEOUT_S, IDLE_LIMIT_S

AMQP = "amqp://guest:s3cret@127.0.0.1:5672/o2c"


def test_the_defaults_are_the_publishers():
    settings = load_settings(broker_url=AMQP)
    assert (settings.amqp_confirm_timeout_s, settings.amqp_idle_limit_s) == (5.0, 60.0)
    assert (CONFIRM_TIMEOUT_S, IDLE_LIMIT_S) == (5.0, 60.0)


@pytest.mark.parametrize("variable", ["O2C_AMQP_CONFIRM_TIMEOUT_S", "O2C_AMQP_IDLE_LIMIT_S"])
@pytest.mark.parametrize(("value", "says"), [
    ("0", "greater than 0"), ("-1.5", "greater than 0"), ("soon", "a valid number"),
    ("inf", "a finite number")])
def test_a_bad_timeout_is_refused_naming_the_variable(monkeypatch, variable, value, says):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings(broker_url=AMQP)
    message = str(refused.value)
    assert f"{variable}: Input should be" in message and says in message
    assert "s3cret" not in message


def test_a_timeout_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("O2C_AMQP_CONFIRM_TIMEOUT_S", "1.5")
    monkeypatch.setenv("O2C_AMQP_IDLE_LIMIT_S", "20")
    settings = load_settings(broker_url=AMQP)
    assert (settings.amqp_confirm_timeout_s, settings.amqp_idle_limit_s) == (1.5, 20.0)
