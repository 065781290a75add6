"""Failures of Redis or the broker themselves, told apart from everything else once.

A step that meets one must not be acked (nor dead-lettered, which needs the same Redis): its
message goes back to its queue and runs again once Redis takes writes. A webhook that meets
one answers 503 so that its sender resends. The family:

==========================================  ===============================================
what Redis answers                           when
==========================================  ===============================================
no answer (``ConnectionError``, timeout)     Redis down, restarting, a network partition
``LOADING``                                  Redis restarting, still reading its data
``OOM command not allowed``                  ``used_memory`` above ``maxmemory`` under
                                             ``noeviction``: reads and deletes still work,
                                             every write that needs memory is refused
``READONLY``                                 a failover made the node we talk to a replica
``MISCONF``                                  ``stop-writes-on-bgsave-error``: the last RDB
                                             save failed (a full or unwritable disk)
``NOREPLICAS``, ``MASTERDOWN``               ``min-replicas-to-write`` unmet; a replica cut
                                             off from its primary
``BUSY``                                     a script overran ``busy-reply-threshold``
==========================================  ===============================================

plus kombu's ``OperationalError``, which wraps a broker connection lost while publishing,
and our ``BrokerUnavailable`` (one of them): RabbitMQ did not confirm a publish (a nack, no
confirm in time, a lost connection, a refused login or vhost). Any other ``ResponseError``
(a wrong type, a script bug) is a defect of ours, not Redis refusing: it is not in the
family.
"""

from __future__ import annotations

import re

import redis
from kombu.exceptions import OperationalError

from o2c_workers.errors import Transient


class BrokerUnavailable(Transient, OperationalError):
    """RabbitMQ did not confirm a publish: it nacked it, no confirm came in time, the
    connection was lost or refused. Whether the broker kept the message is unknown.

    A passing fault of the fleet's tree (a sweep fails and waits for its next run) and
    kombu's connection error alike (infrastructure: the receiver answers 503)."""

    def __init__(self, message: str, *, reason: str) -> None:
        #: ``reason``: ``nacked``, ``returned``, ``timeout`` or ``connection``.
        super().__init__(message, reason=reason)


#: Exception classes that are always infrastructure, for an ``except`` clause.
ALWAYS = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
          redis.exceptions.OutOfMemoryError, OperationalError)
#: The first word of the error answers that say Redis refuses writes for now; redis-py
#: raises a plain ``ResponseError`` for them, its message starting with the word.
REFUSING = frozenset({"MISCONF", "NOREPLICAS", "MASTERDOWN", "BUSY", "LOADING", "OOM",
                      "READONLY"})
#: The code of an error answer, also where a pipeline (``MULTI``) prefixes the command.
_CODE = re.compile(r"^(?:Command # \d+ \(.*?\) of pipeline caused error: )?([A-Z]+)\b", re.S)


def is_infrastructure(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis or the broker cannot take our reads or writes now."""
    if isinstance(exc, ALWAYS):
        return True
    if isinstance(exc, redis.ResponseError):
        # redis-py strips the code of the answers it maps to a class (MASTERDOWN, for one).
        code = getattr(exc, "status_code", None)
        if not code:
            found = _CODE.match(str(exc))
            code = found.group(1) if found else None
        return code in REFUSING
    return False
