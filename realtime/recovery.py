"""Reads of the histories behind a connection's subscriptions (realtime.history), for its session."""

from __future__ import annotations

import asyncio
import time

from realtime import history
from realtime.protocol import STATE_STREAMS, Since
from realtime.providers import providers
from realtime.session import FillGap, Loaded, MarketSub, Sub, UserSub


def key_of(sub: Sub, user_id: int | None) -> str:
    if isinstance(sub, MarketSub):
        return history.trades_key(sub.symbol)
    if user_id is None:
        raise ValueError("a trading channel's history needs a signed-in user")
    return history.user_key(user_id, sub.channel)


async def load(subs: tuple[Sub, ...], since: dict[str, Since], user_id: int | None) -> list[Loaded]:
    """Each history's position, and the events after the client's `since` where it can be served;
    for tickers and books (state, no history) the position of the stored snapshot."""
    store = history.get_history()
    loaded = []
    for sub in subs:
        if isinstance(sub, MarketSub) and sub.stream in STATE_STREAMS:
            loaded.append(await _state_position(sub))
            continue
        key = key_of(sub, user_id)
        position = since.get(sub.channel if isinstance(sub, UserSub) else sub.symbol)
        missed = None if position is None else await store.since(key, position.epoch, position.seq)
        if missed is not None:
            loaded.append(Loaded(sub, position.epoch, position.seq + len(missed), missed))
        else:
            now = await store.position(key)
            loaded.append(Loaded(sub, now.epoch, now.seq))
    return loaded


async def gap(action: FillGap, user_id: int | None) -> list[str]:
    """The events of a gap, or as many as the history still has (none when it lost them)."""
    found = await history.get_history().read_range(
        key_of(action.sub, user_id), action.epoch, action.after, action.up_to
    )
    return found or []


async def _state_position(sub: MarketSub) -> Loaded:
    """The worker run's epoch and the seq of the snapshot the subscriber is about to get (0: none yet)."""
    found = await providers.market_snapshots(sub.stream, (sub.symbol,))
    seq = history.seq_of(found[sub.symbol]) if sub.symbol in found else None
    return Loaded(sub, await _market_epoch(), seq or 0)


_epoch_cache: tuple[float, str] | None = None


async def _market_epoch() -> str:
    """The running worker's epoch (its status record), read at most once a second, off the event loop."""
    global _epoch_cache
    now = time.monotonic()
    if _epoch_cache is None or now - _epoch_cache[0] > 1.0:
        status = await asyncio.to_thread(providers.market_status)
        _epoch_cache = (now, str(status.get("epoch") or "none"))
    return _epoch_cache[1]
