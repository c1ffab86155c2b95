"""Last trade prices shared between the worker (which writes them) and web processes (which read).

Backed by Django's cache: Redis when REDIS_URL is set, process memory in the embedded mode.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.cache import cache

_TTL_SECONDS = 300  # a price older than this is no price: a market order is refused, not filled stale


def _key(symbol: str) -> str:
    return f"last_trade_price:{symbol.upper()}"


def record_trade_price(symbol: str, price: Decimal | str) -> None:
    cache.set(_key(symbol), str(price), _TTL_SECONDS)


async def arecord_trade_price(symbol: str, price: Decimal | str) -> None:
    await cache.aset(_key(symbol), str(price), _TTL_SECONDS)


def last_trade_price(symbol: str) -> Decimal | None:
    raw = cache.get(_key(symbol))
    return Decimal(raw) if raw is not None else None
