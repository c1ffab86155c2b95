"""The latest market state, shared between the worker (which writes it) and web processes (which read).

Backed by Django's cache: Redis when REDIS_URL is set, process memory in the embedded mode.
Two things live here: the last trade price per symbol, with when it was recorded (valuations, and
the freshness check of paper market orders), and the last encoded ticker and order-book frame per
symbol (the snapshot a new subscriber gets first; paper market orders walk the stored book).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches

from realtime import cache_backend
from realtime.protocol import Stream

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


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class LastTrade:
    price: Decimal
    recorded_ms: int  # epoch milliseconds when the worker recorded it

    def age(self, now: int | None = None) -> float:
        """Seconds since it was recorded."""
        return max(0, (now_ms() if now is None else now) - self.recorded_ms) / 1000


@dataclass(frozen=True)
class StoredBook:
    """The top of a symbol's order book as the worker last stored it: (price, quantity) best first."""

    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]


def _price_value(price: Decimal | str, at_ms: int | None) -> str:
    # One value, so the price and its time are always read together.
    return f"{price}@{now_ms() if at_ms is None else int(at_ms)}"


def record_trade_price(symbol: str, price: Decimal | str, *, at_ms: int | None = None) -> None:
    _cache().set(_price_key(symbol), _price_value(price, at_ms), PRICE_TTL_SECONDS)


async def arecord_trade_price(symbol: str, price: Decimal | str, *, at_ms: int | None = None) -> None:
    await _cache().aset(_price_key(symbol), _price_value(price, at_ms), PRICE_TTL_SECONDS)


def last_trade(symbol: str) -> LastTrade | None:
    """The last trade price and when it was recorded, or None (none within PRICE_TTL_SECONDS)."""
    raw = _cache().get(_price_key(symbol))
    if raw is None:
        return None
    price, _, at = str(raw).partition("@")
    try:
        return LastTrade(Decimal(price), int(at) if at else 0)
    except (InvalidOperation, ValueError):
        return None


def last_trade_price(symbol: str) -> Decimal | None:
    found = last_trade(symbol)
    return None if found is None else found.price


async def astore_snapshot(stream: str, symbol: str, text: str) -> None:
    """Keep the newest encoded frame of a stateful stream (ticker, orderbook) for new subscribers."""
    ttl = BOOK_SNAPSHOT_TTL_SECONDS if stream == Stream.ORDERBOOK else SNAPSHOT_TTL_SECONDS
    await _cache().aset(_snapshot_key(stream, symbol), text, ttl)


async def astore_market_state(
    *, prices: dict[str, tuple[str, int | None]] | None = None, snapshots: dict[tuple[str, str], str] | None = None
) -> None:
    """Many last trade prices (symbol -> (price, at_ms)) and snapshots ((stream, symbol) -> text) at once.

    What the worker stores for a tick of messages. On the Redis cache: one script call from the
    event loop. On another cache (memory in the embedded mode, tests): one hop to a thread.
    """
    entries: dict[str, tuple[str, int]] = {}  # key -> (value, timeout)
    now = now_ms()
    for symbol, (price, at_ms) in (prices or {}).items():
        entries[_price_key(symbol)] = (_price_value(price, now if at_ms is None else at_ms), PRICE_TTL_SECONDS)
    for (stream, symbol), text in (snapshots or {}).items():
        ttl = BOOK_SNAPSHOT_TTL_SECONDS if stream == Stream.ORDERBOOK else SNAPSHOT_TTL_SECONDS
        entries[_snapshot_key(stream, symbol)] = (text, ttl)
    if entries:
        await _awrite(entries)


async def _awrite(entries: dict[str, tuple[str, int]]) -> None:
    """The worker's writes (key -> (value, timeout); a zero timeout clears the key), in their order with
    each other: on the Redis cache one script call from the event loop; on another cache (memory in the
    embedded mode, tests) a hop to a thread, not the ORM's one (cache.aset's), so the paper engine's
    queries hold up neither the feed nor a clear (which, queued behind them, could land after the
    book's next store and delete it)."""
    cache = _cache()
    if isinstance(cache, cache_backend.Cache):
        await cache.aset_each(entries)
    else:
        await sync_to_async(_set_each, thread_sensitive=False)(entries)


def _set_each(entries: dict[str, tuple[str, int]]) -> None:
    by_ttl: dict[int, dict[str, str]] = {}
    for key, (value, ttl) in entries.items():
        by_ttl.setdefault(ttl, {})[key] = value
    for ttl, values in by_ttl.items():
        _cache().set_many(values, ttl)


async def aclear_snapshot(stream: str, symbol: str) -> None:
    await _awrite({_snapshot_key(stream, symbol): ("", 0)})


async def asnapshots(stream: str, symbols: list[str] | tuple[str, ...]) -> dict[str, str]:
    """symbol -> stored frame, in the order asked, skipping symbols with none yet."""
    keys = {_snapshot_key(stream, s): s for s in symbols}
    found = await _cache().aget_many(list(keys))
    return {symbol: found[key] for key, symbol in keys.items() if key in found}


def _levels(raw: object) -> tuple[tuple[Decimal, Decimal], ...]:
    if not isinstance(raw, list):
        return ()
    levels = []
    for level in raw:
        try:
            price, quantity = Decimal(str(level[0])), Decimal(str(level[1]))
        except (InvalidOperation, IndexError, TypeError):
            return ()  # a book we cannot read whole is no book
        if price.is_finite() and quantity.is_finite() and price > 0 and quantity > 0:
            levels.append((price, quantity))
    return tuple(levels)


def order_book(symbol: str) -> StoredBook | None:
    """The stored order book of a symbol (the frame /ws/market subscribers get), or None if none is current."""
    raw = _cache().get(_snapshot_key(Stream.ORDERBOOK, symbol))
    if raw is None:
        return None
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(frame, dict):
        return None
    return StoredBook(bids=_levels(frame.get("bids")), asks=_levels(frame.get("asks")))


def store_book_frame(symbol: str, text: str) -> None:
    """Store an encoded orderbook frame (the worker does this asynchronously; tests and tools use this)."""
    _cache().set(_snapshot_key(Stream.ORDERBOOK, symbol), text, BOOK_SNAPSHOT_TTL_SECONDS)


_shared: tuple[tuple, object] | None = None


def _cache():
    """One cache client for the whole process. Django's `cache` is one per asyncio context, so every
    WebSocket reading a snapshot would open its own client, pool and Redis connection (16 KiB per
    connection and Redis's client limit, measured: docs/BENCHMARKS.md)."""
    global _shared
    conf = settings.CACHES[DEFAULT_CACHE_ALIAS]
    marker = (conf.get("BACKEND"), str(conf.get("LOCATION")))
    if _shared is None or _shared[0] != marker:  # settings changed (tests): a client for the new ones
        _shared = (marker, caches.create_connection(DEFAULT_CACHE_ALIAS))
    return _shared[1]
