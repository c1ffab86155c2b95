"""What market data offers the WebSocket gateway; registered with realtime.providers in MarketdataConfig.ready()."""

from __future__ import annotations

import time

from channels.db import database_sync_to_async
from django.conf import settings

from marketdata import latest, selectors, status
from realtime import providers
from realtime.protocol import Stream

CACHE_SECONDS = 5.0  # an admin enabling or disabling a symbol takes effect within this

_cache: tuple[float, frozenset[str]] | None = None


@database_sync_to_async
def _load() -> frozenset[str]:
    if not selectors.symbol_table_seeded():
        return frozenset(settings.APP.market_symbols)  # before the worker seeds the table
    return frozenset(selectors.symbol_enabled_names())


async def enabled_symbols() -> frozenset[str]:
    """The symbols clients may name, cached briefly per process."""
    global _cache
    now = time.monotonic()
    if _cache is None or now - _cache[0] > CACHE_SECONDS:
        _cache = (now, await _load())
    return _cache[1]


async def market_snapshots(stream: Stream, symbols: tuple[str, ...]) -> dict[str, str]:
    return await latest.asnapshots(str(stream), symbols)


def register() -> None:
    providers.register_market(
        enabled_symbols=enabled_symbols, market_snapshots=market_snapshots, market_status=status.read_status
    )
