"""Django's Redis cache backend (settings.CACHES with REDIS_URL) with a cheaper `set_many`.

The market-data worker stores the last trade price of every symbol that traded and the latest ticker
and order-book frames, over a thousand keys a second, through `set_many`. Django's writes them as one
MSET plus an EXPIRE per key inside MULTI/EXEC: two replies per key to read back (QUEUED, then its
result). Here each key is one SET with its expiry, pipelined without a transaction: one reply per
key. Each key stands alone (a price, a snapshot), so nothing needed the transaction.
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class CacheClient(RedisCacheClient):
    def set_many(self, data, timeout):
        client = self.get_client(None, write=True)
        if timeout == 0:
            client.delete(*data)  # as Django's: a zero timeout means "gone now"
            return
        with client.pipeline(transaction=False) as pipeline:
            for key, value in data.items():
                pipeline.set(key, self._serializer.dumps(value), ex=timeout)
            pipeline.execute()


class Cache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = CacheClient
