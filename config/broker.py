"""The one rule for the broker: which ``O2C_BROKER_URL`` and ``O2C_REDIS_URL`` the code serves.

The receiver writes the dedupe mark, the task message and the timeline in one Lua script on
the state Redis (``O2C_REDIS_URL``); a dead letter's requeue, the sweeps, ``o2c resync`` and
``o2c reconcile --fix`` push task messages there too. The workers consume the broker. So the
broker must be that same Redis server and database, or those messages land where no worker
reads. Every process checks this when its settings are read (``Settings`` runs
:func:`check_broker`), so no process starts on a combination it cannot serve.

RabbitMQ (``amqp://``, ``amqps://``, ``pyamqp://``) is the other broker the fleet serves: the
state stays on Redis (dedupe marks, timelines, dead letters, limiter state), and every path
that enqueues publishes to RabbitMQ with publisher confirms before it writes its marks
(``o2c_workers.amqp``). Which kind a process runs on is :func:`broker_kind`.

Identity is the server and the database, not the spelling: ``redis://localhost:6379`` and
``redis://:secret@127.0.0.1:6379/0`` are the same; credentials and TLS do not count. A
Redis Sentinel master (``sentinel://``) is the same when the sentinels (in any order), the
master's name and the database are.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from redis.connection import parse_url

from o2c_workers.redact import redact_text
from o2c_workers.redis_urls import SentinelUrl, is_sentinel

#: Schemes redis-py connects the state with.
STATE_SCHEMES = ("redis", "rediss", "unix")
#: Schemes kombu's Redis transport (the workers' broker) serves with a database in the path.
BROKER_SCHEMES = ("redis", "rediss")
#: Schemes of a RabbitMQ broker (py-amqp, through kombu).
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
DEFAULT_PORT = 6379
#: Names of this host's loopback interface: one server, however it is spelt.
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})

FIX = "unset O2C_BROKER_URL (the broker is then O2C_REDIS_URL's Redis)"


class BrokerRefused(ValueError):
    """A broker and state combination the code cannot serve; the message says why."""


@dataclass(frozen=True)
class RedisServer:
    """One Redis database: where the server listens (host and port, or a socket) and the db."""

    where: tuple[str, ...]
    db: int

    def __str__(self) -> str:
        place = self.where[1] if self.where[0] == "unix" else ":".join(self.where[1:])
        return f"{place} database {self.db}"


def redis_server(url: str, *, variable: str) -> RedisServer:
    """The server and database a Redis URL names (redis-py's own parsing)."""
    try:
        parts = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise BrokerRefused(f"{variable} is not a Redis URL ({safe(url)}): {exc}") from None
    db = int(parts.get("db", 0))
    if "path" in parts:
        return RedisServer(("unix", str(parts["path"])), db)
    host = str(parts.get("host", "localhost")).lower()
    host = "localhost" if host in LOOPBACK else host
    return RedisServer(("tcp", host, str(parts.get("port", DEFAULT_PORT))), db)


def broker_kind(broker_url: str) -> str:
    """``"amqp"`` for a RabbitMQ broker URL, else ``"redis"`` (the rule has checked it)."""
    return "amqp" if scheme(broker_url) in AMQP_SCHEMES else "redis"


def check_broker(redis_url: str, broker_url: str | None) -> None:
    """Refuse (``BrokerRefused``) a state or broker URL the fleet cannot serve."""
    effective = broker_url or redis_url
    if broker_url and scheme(broker_url) in AMQP_SCHEMES:
        check_state(redis_url)
        return
    if is_sentinel(redis_url) or is_sentinel(effective):
        check_sentinel(redis_url, broker_url)
        return
    state = check_state(redis_url)
    assert state is not None
    variable = "O2C_BROKER_URL" if broker_url else "O2C_REDIS_URL (the broker, as "\
        "O2C_BROKER_URL is unset)"
    broker_scheme = scheme(effective)
    if broker_scheme not in BROKER_SCHEMES:
        raise BrokerRefused(
            f"{variable} is {safe(effective)}: the workers' broker must be the Redis of "
            f"O2C_REDIS_URL ({safe(redis_url)}) given as redis://, rediss:// or "
            "sentinel://, or a RabbitMQ broker (amqp://, amqps://); unix sockets and other "
            f"brokers are not supported. {fix(broker_url)}")
    if "db" in query_names(effective):
        raise BrokerRefused(
            f"{variable} gives its database as ?db= ({safe(effective)}), which the workers' "
            f"broker (kombu) does not read: give it in the path, redis://host:port/N. "
            f"{fix(broker_url)}")
    broker = redis_server(effective, variable=variable)
    if broker != state:
        raise BrokerRefused(
            f"O2C_BROKER_URL ({safe(effective)}, {broker}) is not the Redis of O2C_REDIS_URL "
            f"({safe(redis_url)}, {state}): the receiver, requeues and sweeps write task "
            "messages onto O2C_REDIS_URL's Redis in one script with the dedupe mark, so "
            f"workers reading another one would never see them. To run, {FIX}, or point "
            "both at the same server and database")


def check_state(redis_url: str) -> RedisServer | None:
    """The state must be a Redis (a server's URL, or a Sentinel-managed master's)."""
    if is_sentinel(redis_url):
        _sentinel(redis_url, variable="O2C_REDIS_URL")
        return None
    if scheme(redis_url) not in STATE_SCHEMES:
        raise BrokerRefused(
            f"O2C_REDIS_URL must be a Redis URL (redis://, rediss://, unix:// or "
            f"sentinel://), not {safe(redis_url)}: it holds the state and the queues")
    return redis_server(redis_url, variable="O2C_REDIS_URL")


def check_sentinel(redis_url: str, broker_url: str | None) -> None:
    """A Sentinel-managed master serves as both, or neither: the same master of the same
    sentinels and the same database."""
    state = _sentinel(redis_url, variable="O2C_REDIS_URL")
    if broker_url is None:
        return
    broker = _sentinel(broker_url, variable="O2C_BROKER_URL")
    if state is None or broker is None:
        raise BrokerRefused(
            f"O2C_BROKER_URL ({safe(broker_url)}) and O2C_REDIS_URL ({safe(redis_url)}) must "
            "both name the master Redis Sentinel watches, or neither: a sentinel:// URL and a "
            f"server's URL cannot be told to be the same Redis. To run, {FIX}")
    if broker.identity() != state.identity():
        raise BrokerRefused(
            f"O2C_BROKER_URL ({safe(broker_url)}) is not the master and database of "
            f"O2C_REDIS_URL ({safe(redis_url)}): the receiver, requeues and sweeps write task "
            "messages onto O2C_REDIS_URL's Redis, so workers reading another one would never "
            f"see them. To run, {FIX}")


def _sentinel(url: str, *, variable: str) -> SentinelUrl | None:
    if not is_sentinel(url):
        return None
    try:
        return SentinelUrl.parse(url)
    except ValueError as exc:
        raise BrokerRefused(f"{variable} is not a usable sentinel:// URL ({safe(url)}): "
                            f"{exc}") from None


def fix(broker_url: str | None) -> str:
    return f"To run, {FIX}." if broker_url else \
        "To run, set O2C_REDIS_URL to redis://host:port/N."


def scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def query_names(url: str) -> set[str]:
    return {pair.split("=", 1)[0] for pair in urlsplit(url).query.split("&") if pair}


def safe(url: str) -> str:
    """The URL with any password masked, fit for a message."""
    return redact_text(url)
