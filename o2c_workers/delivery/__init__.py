"""Reliable delivery on Redis: no message lost, held work back in seconds, delayed retries
parked in Redis. ``transport.Transport`` is the kombu transport the fleet runs on; the
design and its crash windows are in ``docs/architecture.md``."""
