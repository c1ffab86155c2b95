"""Which symbols clients may name: the enabled rows of marketdata.Symbol, cached briefly per process.

Before the table is seeded (no rows at all), the symbols configured in MARKET_SYMBOLS count.
"""

from __future__ import annotations

import time

from channels.db import database_sync_to_async
from django.conf import settings

from marketdata.models import Symbol

CACHE_SECONDS = 5.0  # an admin enabling or disabling a symbol takes effect within this

_cache: tuple[float, frozenset[str]] | None = None


@database_sync_to_async
def _load() -> frozenset[str]:
    if not Symbol.objects.exists():
        return frozenset(settings.APP.market_symbols)
    return frozenset(Symbol.objects.filter(enabled=True).values_list("name", flat=True))


async def enabled_symbols() -> frozenset[str]:
    global _cache
    now = time.monotonic()
    if _cache is None or now - _cache[0] > CACHE_SECONDS:
        _cache = (now, await _load())
    return _cache[1]
