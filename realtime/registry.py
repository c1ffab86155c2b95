"""Who is connected: per-user connection limits and the figures behind /ws/status.

With REDIS_URL every daphne instance shares one registry in Redis, so the per-user limit and the
status figures hold across instances. Entries expire unless their connection's process refreshes
them, so a process that dies leaks nothing for longer than ENTRY_TTL. Without Redis (the embedded
single-process mode) the same figures are kept in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

logger = logging.getLogger(__name__)

ENTRY_TTL = 30.0  # seconds an entry lives without a refresh
REFRESH_EVERY = 10.0


@dataclass
class Connection:
    conn_id: str
    endpoint: str
    user_id: int | None
    subscriptions: int = 0


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


class MemoryRegistry:
    """One process's connections (embedded mode)."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}

    async def acquire(self, conn: Connection, limit: int | None) -> bool:
        if conn.user_id is not None and limit is not None:
            mine = sum(1 for c in self._connections.values() if c.user_id == conn.user_id)
            if mine >= limit:
                return False
        self._connections[conn.conn_id] = conn
        return True

    async def release(self, conn_id: str) -> None:
        self._connections.pop(conn_id, None)

    async def set_subscriptions(self, conn_id: str, count: int) -> None:
        if conn_id in self._connections:
            self._connections[conn_id].subscriptions = count

    async def status(self) -> Status:
        return _status_of(list(self._connections.values()))


# Atomically: forget this user's expired entries, count the live ones, and take a place if free.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local expires = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if limit >= 0 and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], expires, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(expires - now))
redis.call('ZADD', KEYS[2], expires, ARGV[4])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
return 1
"""

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

    def _key(self, *parts: object) -> str:
        return ":".join((self._prefix, *map(str, parts)))

    def _user_key(self, conn: Connection) -> str:
        return self._key("user", "anonymous" if conn.user_id is None else conn.user_id)

    def _redis(self):
        from tradingsite.redis_client import async_client

        # One client per event loop: the test suite and the embedded server each run their own loop.
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._clients:
            self._clients[loop_id] = async_client(self._url, decode_responses=True)
        return self._clients[loop_id]

    async def acquire(self, conn: Connection, limit: int | None) -> bool:
        now = time.time() * 1000
        ok = await self._redis().eval(
            _ACQUIRE,
            3,
            self._user_key(conn),
            self._key("connections"),
            self._key("info"),
            now,
            now + ENTRY_TTL * 1000,
            -1 if limit is None or conn.user_id is None else limit,
            conn.conn_id,
            self._info(conn),
        )
        if ok:
            self._local[conn.conn_id] = conn
            self._ensure_refresher()
        return bool(ok)

    async def release(self, conn_id: str) -> None:
        conn = self._local.pop(conn_id, None)
        if conn is None:
            return
        redis = self._redis()
        async with redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._user_key(conn), conn_id)
            pipe.zrem(self._key("connections"), conn_id)
            pipe.hdel(self._key("info"), conn_id)
            await pipe.execute()

    async def set_subscriptions(self, conn_id: str, count: int) -> None:
        conn = self._local.get(conn_id)
        if conn is None:
            return
        conn.subscriptions = count
        await self._redis().hset(self._key("info"), conn_id, self._info(conn))

    async def status(self) -> Status:
        redis = self._redis()
        now = time.time() * 1000
        await redis.eval(_SWEEP, 2, self._key("connections"), self._key("info"), now)
        raw = await redis.hgetall(self._key("info"))
        return _status_of([self._parse(conn_id, value) for conn_id, value in raw.items()])

    async def refresh(self) -> None:
        """Push this process's live entries' expiry forward."""
        if not self._local:
            return
        expires = time.time() * 1000 + ENTRY_TTL * 1000
        async with self._redis().pipeline(transaction=False) as pipe:
            for conn in self._local.values():
                pipe.zadd(self._user_key(conn), {conn.conn_id: expires})
                pipe.pexpire(self._user_key(conn), int(ENTRY_TTL * 1000))
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
