"""``o2c_redis_memory_ratio`` on the receiver's ``/metrics``: Redis's used memory over its
limit, read from ``INFO memory`` at each scrape; absent without a limit or an answer."""

from __future__ import annotations

import pytest
import redis

from config import load_settings
from o2c_workers import app as celery_app
from o2c_workers.dev.redis_runtime import free_port
from o2c_workers.metrics import RedisMemoryRatio, memory_ratio
from o2c_workers.receiver.app import Receiver
from o2c_workers.runtime import connect
from tests.helpers import call_wsgi
from tests.observability.conftest import samples
from tests.receiver.conftest import TOKEN
from tests.refusing import private_redis  # noqa: F401
from tests.soapmsg import ORG_ID

GAUGE = (RedisMemoryRatio.NAME, ())


def scrape(client: redis.Redis, url: str) -> dict:
    settings = load_settings(redis_url=url, webhook_token=TOKEN, salesforce_org_ids=[ORG_ID])
    receiver = Receiver(settings, redis_client=client, celery_app=celery_app)
    status, _, body = call_wsgi(receiver, "GET", "/metrics")
    assert status == 200
    return samples(body.decode())


def test_the_ratio_of_an_info_answer() -> None:
    assert memory_ratio({"used_memory": 300, "maxmemory": 1200}) == 0.25
    assert memory_ratio({"used_memory": 1300, "maxmemory": 1200}) > 1
    assert memory_ratio({"used_memory": 300, "maxmemory": 0}) is None
    assert memory_ratio({}) is None


@pytest.mark.slow
def test_the_receiver_reports_used_over_maxmemory(private_redis) -> None:  # noqa: F811
    client = redis.Redis.from_url(private_redis.url)
    assert GAUGE not in scrape(client, private_redis.url)  # no maxmemory: nothing to divide
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used * 4)
    ratio = scrape(client, private_redis.url)[GAUGE]
    assert 0.15 < ratio < 0.5
    client.close()


def test_no_sample_when_redis_does_not_answer(redis_url: str) -> None:
    down = connect(f"redis://127.0.0.1:{free_port()}/0", retries=1)  # as the receiver's
    assert GAUGE not in scrape(down, redis_url)
