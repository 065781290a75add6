from __future__ import annotations

import pytest
import redis

from config import Settings, load_settings
from o2c_workers import app as celery_app
from o2c_workers.receiver.app import Receiver
from tests.soapmsg import ORG_ID

TOKEN = "s3cret-webhook-token"


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return load_settings(redis_url=redis_url, webhook_token=TOKEN, salesforce_org_ids=[ORG_ID],
                         log_json=True)


@pytest.fixture
def receiver(settings: Settings, redis_client: redis.Redis) -> Receiver:
    return Receiver(settings, redis_client=redis_client, celery_app=celery_app)
