"""The only place that builds channel-layer group names.

Group names may hold ASCII letters, digits, '-', '_' and '.', and must stay under 100 characters;
symbols are validated upstream, so these builders only assert it.
"""

from __future__ import annotations

import re

from realtime.protocol import TRADING_CHANNELS, Stream
from realtime.session import MarketSub, Revocations, UserSub

_VALID = re.compile(r"^[a-z0-9._-]{1,99}$")

# The channel layer each group lives on (see settings.CHANNEL_LAYERS).
MARKET_LAYER = "market"
TRADING_LAYER = "default"


def _checked(name: str) -> str:
    if not _VALID.fullmatch(name):
        raise ValueError(f"invalid group name {name!r}")
    return name


def market(stream: Stream | str, symbol: str) -> str:
    """market.ticker.btcusdt, market.trades.ethusdt, market.orderbook.adausdt"""
    return _checked(f"market.{Stream(stream).value}.{symbol.lower()}")


def user(user_id: int, channel: str) -> str:
    """user.42.orders: one group per user and trading channel, so users never share a group."""
    if channel not in TRADING_CHANNELS:
        raise ValueError(f"unknown trading channel {channel!r}")
    return _checked(f"user.{int(user_id)}.{channel}")


def of(sub: MarketSub | UserSub | Revocations, user_id: int | None) -> tuple[str, str]:
    """(channel layer alias, group name) of a connection's subscription."""
    if isinstance(sub, MarketSub):
        return MARKET_LAYER, market(sub.stream, sub.symbol)
    if user_id is None:
        raise ValueError("a trading channel needs a signed-in user")
    if isinstance(sub, Revocations):
        return TRADING_LAYER, user_connections(user_id)
    return TRADING_LAYER, user(user_id, sub.channel)


def user_connections(user_id: int) -> str:
    """user.42.connections: every /ws/trading connection of one user, whatever it subscribed (revocation)."""
    return _checked(f"user.{int(user_id)}.connections")
