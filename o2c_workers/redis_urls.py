"""Redis addresses: a server (``redis://``, ``rediss://``, ``unix://``) or a master that Redis
Sentinel names (``sentinel://``).

A Sentinel URL lists the sentinels and names the master::

    sentinel://[[user]:password@]host:port[,host:port...][/db]?master=NAME[&sentinel_password=S]

The user name and password are the master's (and its replicas'); ``sentinel_password`` is
the sentinels' own, when they ask for one. Every process that reads ``O2C_REDIS_URL`` or
``O2C_BROKER_URL`` asks the sentinels for the current master, and again after a failover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

SCHEME = "sentinel"
DEFAULT_PORT = 26379
#: Query parameters a Sentinel URL may carry.
PARAMETERS = ("master", "sentinel_password")


def is_sentinel(url: str) -> bool:
    return url.startswith(f"{SCHEME}://")


@dataclass(frozen=True)
class SentinelUrl:
    """Where the sentinels are, which master they watch, and how to sign in."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelUrl:
        """Read a ``sentinel://`` URL; a ``ValueError`` says what is wrong with it."""
        if not is_sentinel(url):
            raise ValueError(f"not a {SCHEME}:// URL")
        split = urlsplit(url)
        credentials, _, hosts = split.netloc.rpartition("@")
        username, _, password = credentials.partition(":")
        query = parse_qs(split.query, keep_blank_values=True)
        unknown = sorted(set(query) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}: a {SCHEME}:// URL "
                             f"takes {' and '.join(PARAMETERS)}")
        master = (query.get("master") or [""])[-1]
        if not master:
            raise ValueError(f"a {SCHEME}:// URL names its master: ?master=NAME")
        sentinel_password = (query.get("sentinel_password") or [""])[-1]
        return cls(sentinels=_hosts(hosts), master=master, db=_db(split.path),
                   username=unquote(username) or None, password=unquote(password) or None,
                   sentinel_password=sentinel_password or None)

    def identity(self) -> tuple[str, frozenset[tuple[str, int]], str, int]:
        """What names one database: the same master of the same sentinels, the same db."""
        return SCHEME, frozenset(self.sentinels), self.master, self.db

    def sentinel_kwargs(self) -> dict[str, Any] | None:
        """redis-py's ``sentinel_kwargs``: how to sign in at the sentinels themselves."""
        return {"password": self.sentinel_password} if self.sentinel_password else None

    def kombu_url(self) -> str:
        """kombu's form: one ``sentinel://`` URL per sentinel, ``;``-separated, each with the
        master's credentials and the database (kombu reads them from the first)."""
        auth = ""
        if self.password is not None:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        elif self.username is not None:
            auth = f"{quote(self.username, safe='')}@"
        return ";".join(f"{SCHEME}://{auth}{_netloc(host, port)}/{self.db}"
                        for host, port in self.sentinels)

    def kombu_options(self) -> dict[str, Any]:
        """The transport options kombu's Sentinel channel needs beside that URL."""
        options: dict[str, Any] = {"master_name": self.master}
        if self.sentinel_kwargs():
            options["sentinel_kwargs"] = self.sentinel_kwargs()
        return options


def _hosts(hosts: str) -> tuple[tuple[str, int], ...]:
    found: list[tuple[str, int]] = []
    for part in hosts.split(","):
        if not part:
            raise ValueError("a sentinel address is empty: list them as host:port,host:port")
        split = urlsplit(f"//{part}")
        if not split.hostname:
            raise ValueError(f"not a sentinel address (host:port): {part!r}")
        try:
            port = split.port or DEFAULT_PORT
        except ValueError:
            raise ValueError(f"not a port number in sentinel address {part!r}") from None
        found.append((split.hostname, port))
    return tuple(found)


def _db(path: str) -> int:
    name = path.strip("/")
    if not name:
        return 0
    if not name.isdigit():
        raise ValueError(f"the database is a number (/0, /1, ...), not {name!r}")
    return int(name)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
