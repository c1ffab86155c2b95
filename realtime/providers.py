"""What the gateway needs from the rest of the system, registered by each app in its AppConfig.ready().

`realtime` knows sockets, groups and wire shapes, not the trading domain or the exchange: it imports
neither `accounts` nor `marketdata`. Those apps plug in here instead (marketdata: which symbols are
enabled, the stored market snapshots, the worker's status; accounts: each trading channel's
snapshot), so the dependency points one way and a process without an app simply has less to offer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from django.conf import settings

from realtime.protocol import Stream, encode
from realtime.session import MarketSub, Sub, UserSub

EnabledSymbols = Callable[[], Awaitable[frozenset[str]]]
MarketSnapshots = Callable[[Stream, tuple[str, ...]], Awaitable[dict[str, str]]]  # symbol -> encoded frame
ChannelSnapshot = Callable[[int], Awaitable[list[dict]]]  # user id -> messages
MarketStatus = Callable[[], dict]
TokenCurrent = Callable[[object, str], str | None]  # (user, raw access token) -> why it is refused, or None


async def _configured_symbols() -> frozenset[str]:
    return frozenset(settings.APP.market_symbols)


async def _no_market_snapshots(stream: Stream, symbols: tuple[str, ...]) -> dict[str, str]:
    return {}


def _no_worker() -> dict:
    return {"connected": False, "worker": "not running"}


def _any_token(user: object, raw: str) -> str | None:
    return None


@dataclass
class Providers:
    enabled_symbols: EnabledSymbols = _configured_symbols
    market_snapshots: MarketSnapshots = _no_market_snapshots
    market_status: MarketStatus = _no_worker
    token_current: TokenCurrent = _any_token  # a token from before a password change (security app)
    channel_snapshots: dict[str, ChannelSnapshot] = field(default_factory=dict)

    async def channel_snapshot(self, channel: str, user_id: int) -> list[dict]:
        provider = self.channel_snapshots.get(channel)
        return [] if provider is None else await provider(user_id)

    async def snapshots(self, subs: tuple[Sub, ...], user_id: int | None) -> dict[Sub, list[str]]:
        """The current state of each subscription, as encoded frames (market ones are stored encoded)."""
        found: dict[Sub, list[str]] = {}
        market = [sub for sub in subs if isinstance(sub, MarketSub)]
        for stream in dict.fromkeys(sub.stream for sub in market):
            symbols = tuple(sub.symbol for sub in market if sub.stream == stream)
            for symbol, text in (await self.market_snapshots(stream, symbols)).items():
                found[MarketSub(stream, symbol)] = [text]
        for sub in subs:
            if isinstance(sub, UserSub) and user_id is not None:
                found[sub] = [encode(message) for message in await self.channel_snapshot(sub.channel, user_id)]
        return found


providers = Providers()


def register_market(*, enabled_symbols: EnabledSymbols, market_snapshots: MarketSnapshots, market_status: MarketStatus):
    providers.enabled_symbols = enabled_symbols
    providers.market_snapshots = market_snapshots
    providers.market_status = market_status


def register_channel_snapshot(channel: str, provider: ChannelSnapshot) -> None:
    providers.channel_snapshots[channel] = provider


def register_token_check(check: TokenCurrent) -> None:
    providers.token_current = check
