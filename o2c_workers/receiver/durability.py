"""How many replicas confirm an enqueue before the receiver answers (``O2C_ENQUEUE_MIN_REPLICAS``).

With none asked for (the default) the receiver answers once the primary has the write and
issues no ``WAIT`` at all. Otherwise it waits up to ``O2C_ENQUEUE_REPLICA_TIMEOUT_MS`` for
that many replicas and answers 503 when too few confirm: the sender resends, the resend
finds its dedupe mark, and its own wait covers the first write (``o2c_workers.atomic``).
The dead-letter requeue and the admin API do not wait: a person sees their answer and can
run them again.
"""

from __future__ import annotations

import logging

from config import Settings
from o2c_workers import keys
from o2c_workers.atomic import Replicas
from o2c_workers.errors import NotReplicated
from o2c_workers.receiver.http import HTTPError

log = logging.getLogger("o2c.receiver")

#: What a 503 for too few replicas suggests; Salesforce resends on its own schedule anyway.
RETRY_AFTER_S = 30


def replicas(settings: Settings) -> Replicas | None:
    """The wait the receiver's enqueues make, or None when they make none."""
    if settings.enqueue_min_replicas == 0:
        return None
    return Replicas(count=settings.enqueue_min_replicas,
                    timeout_ms=settings.enqueue_replica_timeout_ms,
                    probe_key=keys.replication_probe(settings.key_prefix))


def unavailable(exc: NotReplicated, *, notifications: int) -> HTTPError:
    """The 503 for a write on the primary that too few replicas confirmed in time."""
    log.error("enqueued but not replicated, no Ack: %s", exc,
              extra={"outcome": "not_replicated", "notifications": notifications})
    return HTTPError(503, "taken in, but not yet on enough replicas; resend later",
                     headers=[("Retry-After", str(RETRY_AFTER_S))])
