"""Reads of the histories behind a connection's subscriptions (realtime.history), for its session."""

from __future__ import annotations

from realtime import history
from realtime.protocol import Since
from realtime.session import FillGap, Loaded, MarketSub, Sub, UserSub


def key_of(sub: Sub, user_id: int | None) -> str:
    if isinstance(sub, MarketSub):
        return history.trades_key(sub.symbol)
    if user_id is None:
        raise ValueError("a trading channel's history needs a signed-in user")
    return history.user_key(user_id, sub.channel)


async def load(subs: tuple[Sub, ...], since: dict[str, Since], user_id: int | None) -> list[Loaded]:
    """Each history's position, and the events after the client's `since` where it can be served."""
    store = history.get_history()
    loaded = []
    for sub in subs:
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
