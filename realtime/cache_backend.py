"""Django's Redis cache backend (settings.CACHES with REDIS_URL) with a cheaper `set_many`.

The market-data worker stores the last trade price of every symbol that traded and the latest ticker
and order-book frames, over a thousand keys a second. Django's `set_many` writes them as one MSET
plus an EXPIRE per key inside MULTI/EXEC: two replies per key to read back (QUEUED, then its
result), each parsed in Python by redis-py. Here all keys are one script call (a SET with its
expiry per key) and one reply. Each key stands alone (a price, a snapshot), so nothing needed the
transaction; the script is atomic anyway.

`Cache.aset_each` is the same write from the event loop, on a redis.asyncio client, with a timeout
per key: the worker's store of a batch's state, without a hop to a thread. This module owns the
cache's wire format (the key with its prefix and version, the serialized value), so what it writes
reads back through Django's cache API like any `set`.
"""

from __future__ import annotations

from functools import cached_property

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

from realtime import script_args
from realtime.redis_client import PerLoop, async_client

# ARGV: the keys, the values and the timeouts, each packed into two arguments (realtime.script_args);
# a timeout in seconds, '' for none, '0' to delete the key (as Django's set with a zero timeout).
# Returns the number of keys.
_SET_EACH = (
    script_args.LUA_SPLIT
    + """
local keys, values, ttls = split(ARGV[1], ARGV[2]), split(ARGV[3], ARGV[4]), split(ARGV[5], ARGV[6])
for i, key in ipairs(keys) do
  local value, ttl = values[i], ttls[i]
  if ttl == '' then
    redis.call('SET', key, value)
  elseif ttl == '0' then
    redis.call('DEL', key)
  else
    redis.call('SET', key, value, 'EX', ttl)
  end
end
return #keys
"""
)


MADE_KEYS = 10_000  # aset_each's remembered keys (with prefix and version) at most


class CacheClient(RedisCacheClient):
    def set_many(self, data, timeout):
        if data:
            self._set_each_script(args=self.set_each_args(data, data.values(), [timeout] * len(data)))

    def set_each_args(self, keys, values, timeouts) -> list:
        """The script's ARGV: the keys, each value serialized as Django's cache stores it (an int as
        its digits), and the timeouts."""
        dumps = self._serializer.dumps
        serialized = [str(value) if type(value) is int else value for value in map(dumps, values)]
        ttls = ["" if timeout is None else str(int(timeout)) for timeout in timeouts]
        return [*script_args.pack(keys), *script_args.pack(serialized), *script_args.pack(ttls)]

    @cached_property
    def _set_each_script(self):
        # Bound to a client of the write pool once: get_client makes a new client at each call.
        return self.get_client(None, write=True).register_script(_SET_EACH)


class Cache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = CacheClient
        self._async_set_each: PerLoop = PerLoop(self._new_async_set_each)
        self._made_keys: dict[str, str] = {}  # the worker writes the same few hundred keys all day

    def _made_key(self, key: str) -> str:
        made = self._made_keys.get(key)
        if made is None:
            if len(self._made_keys) >= MADE_KEYS:
                self._made_keys.clear()  # keys we were not meant to see again: start over
            made = self._made_keys[key] = self.make_key(key)
        return made

    def _new_async_set_each(self):
        return async_client(self._servers[0]).register_script(_SET_EACH)  # the server Django writes to

    async def aset_each(self, entries: dict[str, tuple[object, float | None]]) -> None:
        """`set` of each key to (value, timeout), in one script call on this event loop's client.

        The same keys (prefix, version) and values (Django's serializer) as `set`, so `get` and
        `get_many` read them back; the keys are this project's own, so Django's check that they
        suit memcached (it only warns) is left out.
        """
        if not entries:
            return
        keys = [self._made_key(key) for key in entries]
        backend_timeouts = {timeout: self.get_backend_timeout(timeout) for _value, timeout in entries.values()}
        timeouts = [backend_timeouts[timeout] for _value, timeout in entries.values()]
        args = self._cache.set_each_args(keys, (value for value, _timeout in entries.values()), timeouts)
        await self._async_set_each.get()(args=args)
