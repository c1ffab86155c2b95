"""Who is connected: per-user connection limits and the figures behind /ws/status.

With REDIS_URL every daphne instance shares one registry in Redis, so the per-user limit and the
status figures hold across instances. Entries expire unless their connection's process refreshes
them, so a process that dies leaks nothing for longer than ENTRY_TTL. Without Redis (the embedded
single-process mode) the same figures are kept in memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings

logger = logging.getLogger(__name__)

ENTRY_TTL = 30.0  # seconds an entry lives without a refresh
REFRESH_EVERY = 10.0
REFRESH_BATCH = 500  # connections refreshed per Redis pipeline


@dataclass(slots=True)  # one per connection
class Connection:
    conn_id: str
    endpoint: str
    user_id: int | None
    subscriptions: int = 0
    address: str | None = None  # the client's address (realtime.addresses), for the per-address limit


@dataclass(frozen=True)
class Limits:
    """At most this many connections per user and per client address (None: no limit)."""

    per_user: int | None = None
    per_address: int | None = None


@dataclass
class Status:
    active_connections: int
    total_subscriptions: int
    by_endpoint: dict[str, int] = field(default_factory=dict)
    user_connections: dict[str, int] = field(default_factory=dict)


def _status_of(connections: list[Connection]) -> Status:
    status = Status(active_connections=len(connections), total_subscriptions=0)
    for conn in connections:
        status.total_subscriptions += conn.subscriptions
        status.by_endpoint[conn.endpoint] = status.by_endpoint.get(conn.endpoint, 0) + 1
        if conn.user_id is not None:
            key = f"user_{conn.user_id}"
            status.user_connections[key] = status.user_connections.get(key, 0) + 1
    return status


def _of(conn: Connection, limit: str):
    return conn.user_id if limit == "user" else conn.address


class MemoryRegistry:
    """One process's connections (embedded mode)."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}

    async def acquire(self, conn: Connection, limits: Limits) -> str | None:
        """None when the connection took a place, else which limit refused it: "user" or "address"."""
        live = list(self._connections.values())
        for refused_by, mine, limit in (
            ("user", conn.user_id, limits.per_user),
            ("address", conn.address, limits.per_address),
        ):
            if mine is not None and limit is not None and sum(1 for c in live if _of(c, refused_by) == mine) >= limit:
                return refused_by
        self._connections[conn.conn_id] = conn
        return None

    async def release(self, conn_id: str) -> None:
        self._connections.pop(conn_id, None)

    async def set_subscriptions(self, conn_id: str, count: int) -> None:
        if conn_id in self._connections:
            self._connections[conn_id].subscriptions = count

    async def status(self) -> Status:
        return self.status_now()

    def status_now(self) -> Status:
        """The figures, from any thread (the dict is only read, as one copy)."""
        return _status_of(list(self._connections.values()))


# Atomically: forget the user's and the address's expired entries, count the live ones, and take a
# place in both if each has one free. Returns 0 (taken), 1 (the user is full) or 2 (the address is).
_ACQUIRE = """
local now = tonumber(ARGV[1])
local expires = tonumber(ARGV[2])
local user_limit = tonumber(ARGV[3])
local address_limit = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if user_limit >= 0 and redis.call('ZCARD', KEYS[1]) >= user_limit then
  return 1
end
if address_limit >= 0 and redis.call('ZCARD', KEYS[4]) >= address_limit then
  return 2
end
for _, key in ipairs({KEYS[1], KEYS[4]}) do
  redis.call('ZADD', key, expires, ARGV[4])
  redis.call('PEXPIRE', key, math.ceil(expires - now))
end
redis.call('ZADD', KEYS[2], expires, ARGV[4])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
return 0
"""
_REFUSED_BY = {1: "user", 2: "address"}

# Atomically: drop every expired connection from the global index and its info hash.
_SWEEP = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
  redis.call('HDEL', KEYS[2], unpack(expired))
end
return #expired
"""


class RedisRegistry:
    """Connections of every instance, in Redis; this process refreshes its own entries."""

    def __init__(self, url: str, prefix: str = "ws") -> None:
        self._url = url
        self._prefix = prefix
        self._local: dict[str, Connection] = {}
        self._clients: dict[int, object] = {}
        self._refresher: asyncio.Task | None = None
        self._sync_client = None

    def _key(self, *parts: object) -> str:
        return ":".join((self._prefix, *map(str, parts)))

    def _user_key(self, conn: Connection) -> str:
        return self._key("user", "anonymous" if conn.user_id is None else conn.user_id)

    def _address_key(self, conn: Connection) -> str:
        return self._key("address", conn.address or "unknown")

    def _redis(self):
        from realtime.redis_client import async_client

        # One client per event loop: the test suite and the embedded server each run their own loop.
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._clients:
            self._clients[loop_id] = async_client(self._url, decode_responses=True)
        return self._clients[loop_id]

    async def acquire(self, conn: Connection, limits: Limits) -> str | None:
        """None when the connection took a place, else which limit refused it: "user" or "address"."""
        now = time.time() * 1000
        refused = await self._redis().eval(
            _ACQUIRE,
            4,
            self._user_key(conn),
            self._key("connections"),
            self._key("info"),
            self._address_key(conn),
            now,
            now + ENTRY_TTL * 1000,
            -1 if limits.per_user is None or conn.user_id is None else limits.per_user,
            conn.conn_id,
            self._info(conn),
            -1 if limits.per_address is None or conn.address is None else limits.per_address,
        )
        if refused:
            return _REFUSED_BY[int(refused)]
        self._local[conn.conn_id] = conn
        self._ensure_refresher()
        return None

    async def release(self, conn_id: str) -> None:
        conn = self._local.pop(conn_id, None)
        if conn is None:
            return
        redis = self._redis()
        async with redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._user_key(conn), conn_id)
            pipe.zrem(self._address_key(conn), conn_id)
            pipe.zrem(self._key("connections"), conn_id)
            pipe.hdel(self._key("info"), conn_id)
            await pipe.execute()

    async def set_subscriptions(self, conn_id: str, count: int) -> None:
        conn = self._local.get(conn_id)
        if conn is None:
            return
        conn.subscriptions = count
        # With its expiry: an entry swept while this process could not refresh it must not come back
        # as a connection nobody will ever remove.
        expires = time.time() * 1000 + ENTRY_TTL * 1000
        async with self._redis().pipeline(transaction=True) as pipe:
            pipe.zadd(self._key("connections"), {conn_id: expires})
            pipe.hset(self._key("info"), conn_id, self._info(conn))
            await pipe.execute()

    async def status(self) -> Status:
        redis = self._redis()
        await self.sweep()
        raw = await redis.hgetall(self._key("info"))
        return _status_of([self._parse(conn_id, value) for conn_id, value in raw.items()])

    def status_now(self) -> Status:
        """The same figures through a blocking client: for a worker thread, never the event loop."""
        from realtime.redis_client import sync_client

        if self._sync_client is None:
            self._sync_client = sync_client(self._url, decode_responses=True)
        now = time.time() * 1000
        self._sync_client.eval(_SWEEP, 2, self._key("connections"), self._key("info"), now)
        raw = self._sync_client.hgetall(self._key("info"))
        return _status_of([self._parse(conn_id, value) for conn_id, value in raw.items()])

    async def sweep(self) -> int:
        """Forget every connection whose process stopped refreshing it (a process that died)."""
        now = time.time() * 1000
        return await self._redis().eval(_SWEEP, 2, self._key("connections"), self._key("info"), now)

    async def refresh(self) -> None:
        """Push this process's live entries' expiry forward, REFRESH_BATCH connections per pipeline:
        a pipeline holds its commands (about 1 KB a connection) until it runs, and one for every
        connection at once would raise the process's memory by that much, for good."""
        expires = time.time() * 1000 + ENTRY_TTL * 1000
        live = list(self._local.values())
        for start in range(0, len(live), REFRESH_BATCH):
            # Not one released while an earlier batch ran: it would come back until it expired.
            batch = [conn for conn in live[start : start + REFRESH_BATCH] if conn.conn_id in self._local]
            async with self._redis().pipeline(transaction=False) as pipe:
                for conn in batch:
                    for key in (self._user_key(conn), self._address_key(conn)):
                        pipe.zadd(key, {conn.conn_id: expires})
                        pipe.pexpire(key, int(ENTRY_TTL * 1000))
                    pipe.zadd(self._key("connections"), {conn.conn_id: expires})
                    pipe.hset(self._key("info"), conn.conn_id, self._info(conn))
                await pipe.execute()

    def _ensure_refresher(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while self._local:
            await asyncio.sleep(REFRESH_EVERY)
            try:
                await self.refresh()
                await self.sweep()  # entries of dead processes go without waiting for /ws/status
            except Exception:
                # Redis away for a moment: entries may expire and be re-added on the next refresh.
                logger.warning("could not refresh connection registry", exc_info=True)

    @staticmethod
    def _info(conn: Connection) -> str:
        user = "" if conn.user_id is None else str(conn.user_id)
        return f"{conn.endpoint}|{user}|{conn.subscriptions}"

    @staticmethod
    def _parse(conn_id: str, value: str) -> Connection:
        endpoint, user, subs = value.split("|")
        return Connection(conn_id, endpoint, int(user) if user else None, int(subs))


_registry: MemoryRegistry | RedisRegistry | None = None


def get_registry() -> MemoryRegistry | RedisRegistry:
    global _registry
    if _registry is None:
        url = settings.APP.redis_url
        _registry = RedisRegistry(url) if url else MemoryRegistry()
    return _registry


STATUS_MAX_AGE = 2.0  # seconds /ws/status figures may be old: one computation serves every request
_status_lock = threading.Lock()
_status_cache: tuple[float, Status] | None = None


def cached_status() -> Status:
    """The registry's figures, computed at most every STATUS_MAX_AGE seconds, in the calling thread."""
    global _status_cache
    with _status_lock:
        now = time.monotonic()
        if _status_cache is None or now - _status_cache[0] > STATUS_MAX_AGE:
            _status_cache = (now, get_registry().status_now())
        return _status_cache[1]
