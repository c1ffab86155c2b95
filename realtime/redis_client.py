"""How every part of the system reaches Redis: one URL, plain or through Sentinel.

`REDIS_URL` is either a plain redis-py URL (`redis://[:password@]host:6379/0`, `rediss://...`,
`unix://...`) or names Sentinels, which say which server is the master and follow a failover:

    redis+sentinel://[:password@]host1:26379,host2:26379,host3:26379/mymaster/0

(the password, if any, is the master's; `mymaster` is the Sentinels' service name; `/0` the
database, default 0). `parse` is pure; the factories below build what each user of Redis needs
from it: the registry's and the lease's redis.asyncio client, a channels-redis host, Django's
cache pool. Clients built here find the current master again after a failover.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote

from django.core.exceptions import ImproperlyConfigured

SENTINEL_SCHEME = "redis+sentinel"
PLAIN_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_SENTINEL_PORT = 26379
# A dead master must be noticed and left quickly, so calls do not hang on it.
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
SENTINEL_KWARGS = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}


@dataclass(frozen=True)
class Plain:
    url: str
    db: int


@dataclass(frozen=True)
class Sentinel:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None

    def master_options(self) -> dict:
        options: dict = {"db": self.db}
        if self.username:
            options["username"] = self.username
        if self.password:
            options["password"] = self.password
        return options


def parse(url: str) -> Plain | Sentinel:
    """REDIS_URL -> what to connect to; a malformed URL raises ImproperlyConfigured saying the form."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in (SENTINEL_SCHEME, *PLAIN_SCHEMES):
        raise ImproperlyConfigured(
            f"REDIS_URL must start with redis://, rediss://, unix:// or {SENTINEL_SCHEME}://, not {url!r}"
        )
    if scheme != SENTINEL_SCHEME:
        return Plain(url=url, db=_plain_db(rest, url))
    return _sentinel(rest, url)


def _plain_db(rest: str, url: str) -> int:
    if rest.startswith("/") or "/" not in rest:  # unix:///path?db=N, or no path at all
        query = rest.partition("?")[2]
        for item in query.split("&"):
            name, _, value = item.partition("=")
            if name == "db":
                return _db(value, url)
        return 0
    path = rest.split("/", 1)[1].partition("?")[0].strip("/")
    return _db(path or "0", url)


def _db(text: str, url: str) -> int:
    if not text.isdigit():
        raise ImproperlyConfigured(f"REDIS_URL: the database must be a number, not {text!r} in {url!r}")
    return int(text)


def _sentinel(rest: str, url: str) -> Sentinel:
    form = f"{SENTINEL_SCHEME}://host1:26379,host2:26379/SERVICE/DB"
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        hosts, userinfo = netloc, ""
    username, _, password = userinfo.partition(":")
    parts = [p for p in path.partition("?")[0].split("/") if p]
    if not hosts or not parts or len(parts) > 2:
        raise ImproperlyConfigured(f"REDIS_URL names Sentinels as {form}, not {url!r}")
    return Sentinel(
        sentinels=tuple(_host_port(item, url) for item in hosts.split(",")),
        service=unquote(parts[0]),
        db=_db(parts[1], url) if len(parts) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def _host_port(item: str, url: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [::1]:26379
        host, _, port = item[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = item.partition(":")
    if not host or (port and not port.isdigit()):
        raise ImproperlyConfigured(f"REDIS_URL: {item!r} is not host:port in {url!r}")
    return host, int(port) if port else DEFAULT_SENTINEL_PORT


def database_label(url: str) -> str:
    """`db<N>`: names pub/sub channels by database, which Redis itself does not separate."""
    return f"db{parse(url).db}"


# Connections one client may open: commands beyond it wait for a free one (POOL_WAIT seconds at most)
# instead of each opening its own, so 10,000 sockets connecting at once cannot take 10,000 of
# Redis's connections (its maxclients) away from every other process.
POOL_SIZE = 32
POOL_WAIT = 10.0


def async_client(url: str, **options):
    """A redis.asyncio client (registry, lease, history) with a bounded pool: the master through
    Sentinel, or the plain URL."""
    options = {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT, **options}
    target = parse(url)
    if isinstance(target, Plain):
        import redis.asyncio as aioredis

        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE, timeout=POOL_WAIT, **options)
        return aioredis.Redis(connection_pool=pool)
    from redis.asyncio.sentinel import Sentinel as AsyncSentinel

    manager = AsyncSentinel(list(target.sentinels), sentinel_kwargs=dict(SENTINEL_KWARGS))
    return manager.master_for(target.service, max_connections=POOL_SIZE, **target.master_options(), **options)


T = TypeVar("T")


class PerLoop(Generic[T]):
    """What `make` builds (a redis.asyncio client, scripts bound to it), once per running event loop.

    A redis.asyncio connection belongs to the loop that opened it, and a process may run several:
    the server's, a test's, the ones async_to_sync makes for sync callers. Those of closed loops
    are dropped when a new one is built.
    """

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._by_loop: dict[asyncio.AbstractEventLoop, T] = {}

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        found = self._by_loop.get(loop)
        if found is not None:
            return found
        for other in [other for other in self._by_loop if other.is_closed()]:
            del self._by_loop[other]
        value = self._by_loop[loop] = self._make()
        return value


def sync_client(url: str, **options):
    """A blocking redis client (for worker threads, never the event loop), following a Sentinel failover."""
    import redis

    options = {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT, **options}
    return redis.Redis(connection_pool=CachePool.from_url(url, **options))


def channel_layer_host(url: str, **options) -> dict:
    """A channels-redis `hosts` entry (channels_redis.utils.create_pool understands both forms)."""
    target = parse(url)
    if isinstance(target, Plain):
        return {"address": url, **options}
    return {
        "master_name": target.service,
        "sentinels": [list(pair) for pair in target.sentinels],
        "sentinel_kwargs": dict(SENTINEL_KWARGS),
        **target.master_options(),
        **options,
    }


class CachePool:
    """Django's RedisCache `pool_class`: a Sentinel-managed pool for a sentinel URL, else redis-py's."""

    @classmethod
    def from_url(cls, url: str, **options):
        import redis
        from redis.sentinel import Sentinel as SyncSentinel
        from redis.sentinel import SentinelConnectionPool

        target = parse(url)
        if isinstance(target, Plain):
            return redis.ConnectionPool.from_url(url, **options)
        manager = SyncSentinel(list(target.sentinels), sentinel_kwargs=dict(SENTINEL_KWARGS))
        return SentinelConnectionPool(target.service, manager, **target.master_options(), **options)
