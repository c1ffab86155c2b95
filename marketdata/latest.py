"""The latest market state, shared between the worker (which writes it) and web processes (which read).

Backed by Django's cache: Redis when REDIS_URL is set, process memory in the embedded mode.
Two things live here: the last trade price per symbol (paper fills of market orders) and the last
encoded ticker and order-book frame per symbol (the snapshot a new subscriber gets first).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.cache import cache

# A price older than this is no price: a market order is refused rather than filled at a stale price.
PRICE_TTL_SECONDS = 300
SNAPSHOT_TTL_SECONDS = 120
# A book is only as good as its feed: the worker re-stores a book that is still in sync well within
# this, so when the worker dies its last book disappears quickly instead of being served stale.
BOOK_SNAPSHOT_TTL_SECONDS = 15


def _price_key(symbol: str) -> str:
    return f"last_trade_price:{symbol.upper()}"


def _snapshot_key(stream: str, symbol: str) -> str:
    return f"latest:{stream}:{symbol.upper()}"


def record_trade_price(symbol: str, price: Decimal | str) -> None:
    cache.set(_price_key(symbol), str(price), PRICE_TTL_SECONDS)


async def arecord_trade_price(symbol: str, price: Decimal | str) -> None:
    await cache.aset(_price_key(symbol), str(price), PRICE_TTL_SECONDS)


def last_trade_price(symbol: str) -> Decimal | None:
    raw = cache.get(_price_key(symbol))
    return Decimal(raw) if raw is not None else None


async def astore_snapshot(stream: str, symbol: str, text: str) -> None:
    """Keep the newest encoded frame of a stateful stream (ticker, orderbook) for new subscribers."""
    ttl = BOOK_SNAPSHOT_TTL_SECONDS if stream == "orderbook" else SNAPSHOT_TTL_SECONDS
    await cache.aset(_snapshot_key(stream, symbol), text, ttl)


async def aclear_snapshot(stream: str, symbol: str) -> None:
    await cache.adelete(_snapshot_key(stream, symbol))


async def asnapshots(stream: str, symbols: list[str] | tuple[str, ...]) -> dict[str, str]:
    """symbol -> stored frame, in the order asked, skipping symbols with none yet."""
    keys = {_snapshot_key(stream, s): s for s in symbols}
    found = await cache.aget_many(list(keys))
    return {symbol: found[key] for key, symbol in keys.items() if key in found}
