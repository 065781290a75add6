"""Until the receiver, ``o2c dlq requeue`` and the sweeps publish to RabbitMQ themselves
(``o2c_workers.amqp.publish``, built beside this), they push their task messages onto the
state Redis's queue lists. On a RabbitMQ fleet this relay takes each such message off its
list and publishes it, unchanged, to the fleet's exchange with publisher confirms, as those
publishers will: the workers, their retries and their chains run on RabbitMQ alone.

Tests only. Once the publishers publish, the lists stay empty and the relay moves nothing.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field

import redis
from kombu.connection import Connection

from o2c_workers.amqp import topology


@dataclass
class Relay:
    redis_url: str
    amqp_url: str
    moved: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Relay:
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        with Connection(self.amqp_url, transport_options={"confirm_publish": True}) as conn:
            producer = conn.Producer()
            while not self._stop.is_set():
                found = client.brpop(list(topology.QUEUE_NAMES), timeout=0.5)
                if found is None:
                    continue
                queue, raw = found[0].decode(), found[1]
                self.publish(producer, queue, raw)
        client.close()

    def publish(self, producer, queue: str, raw: bytes) -> None:
        envelope = json.loads(raw)
        props = envelope.get("properties") or {}
        producer.publish(
            base64.b64decode(envelope["body"]), exchange=topology.EXCHANGE, routing_key=queue,
            headers=envelope.get("headers") or {}, content_type=envelope["content-type"],
            content_encoding=envelope["content-encoding"], serializer=None,
            correlation_id=props.get("correlation_id"), delivery_mode=2, retry=True)
        self.moved += 1
