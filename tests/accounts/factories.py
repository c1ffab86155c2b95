"""Small builders for trading tests: users, symbols, prices, orders, bots, and a user's event inbox."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts import services
from accounts.models import Balance, Bot, Order, RiskLimit
from marketdata import latest
from marketdata.models import Symbol
from realtime import groups, protocol
from tests.support import TIMEOUT, access_token

_names = itertools.count(1)
DCA_PARAMS = {"quote_amount": "100", "interval_seconds": 10}


def D(text: str | int) -> Decimal:
    return Decimal(text)


def make_user(username: str | None = None, password: str | None = None, **extra):
    """A user; without a password (hashing one is slow) unless a test logs in with it."""
    name = username or f"trader{next(_names)}"
    return get_user_model().objects.create_user(username=name, password=password, **extra)


def make_symbol(
    name: str = "BTCUSDT",
    *,
    step: str = "0.0001",
    tick: str = "0.01",
    min_notional: str = "0",
    enabled: bool = True,
) -> Symbol:
    symbol, _ = Symbol.objects.update_or_create(
        name=name,
        defaults={"step_size": D(step), "tick_size": D(tick), "min_notional": D(min_notional), "enabled": enabled},
    )
    return symbol


DEEP = "1000000"


def set_book(symbol: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
    """The order book market orders walk, as the worker stores it for /ws/market."""
    frame = protocol.orderbook(
        symbol=symbol, bids=[list(level) for level in bids], asks=[list(level) for level in asks], timestamp=None
    )
    latest.store_book_frame(symbol, protocol.encode(frame))


def set_price(symbol: str, price: str, *, book: bool = True) -> None:
    """A fresh last trade price and (unless told not to) a deep book at it: market orders fill at the price."""
    latest.record_trade_price(symbol, price)
    if book:
        set_book(symbol, [(price, DEEP)], [(price, DEEP)])


def fund(user, asset: str, free: str) -> Balance:
    """Set a user's free balance of an asset (tests only: in the product, balances move by fills)."""
    balance, _ = Balance.objects.update_or_create(owner=user, asset=asset, defaults={"free": D(free)})
    return balance


def balance(user, asset: str = "USDT") -> tuple[Decimal, Decimal]:
    """(free, locked) of one asset."""
    row = Balance.objects.filter(owner=user, asset=asset).values_list("free", "locked").first()
    return row or (D("100000") if asset == "USDT" else D(0), D(0))


def place(user, side: str = "buy", quantity: str = "0.5", price: str | None = None, symbol: str = "BTCUSDT", **kw):
    """A market order, or a limit order when a price is given."""
    return services.order_place(
        user_id=user.pk,
        symbol=symbol,
        side=side,
        order_type="market" if price is None else "limit",
        quantity=D(quantity),
        price=None if price is None else D(price),
        **kw,
    )


def make_bot(user, *, name: str = "DCA BTC", symbol: str = "BTCUSDT", params: dict | None = None) -> Bot:
    return services.bot_create(user_id=user.pk, name=name, symbol=symbol, params=params or dict(DCA_PARAMS))


def make_limit(user, symbol: str = "BTCUSDT", max_notional: str = "5000") -> RiskLimit:
    return services.risk_limit_set(user_id=user.pk, symbol=symbol, max_notional=D(max_notional))[0]


def reload(order: Order) -> Order:
    order.refresh_from_db()
    return order


def api_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user.pk)}")
    return client


def trade(symbol: str, price: str, quantity: str = "10", trade_id: int = 1, timestamp: str | None = None) -> dict:
    """A trade message as the worker gives the engine; printed now unless a time is given."""
    return {
        "type": "trade",
        "symbol": symbol,
        "price": price,
        "quantity": quantity,
        "side": "buy",
        # a millisecond on: exchange times have milliseconds, orders placed just before have microseconds
        "timestamp": timestamp or protocol.iso_timestamp(datetime.now(UTC) + timedelta(milliseconds=1)),
        "trade_id": trade_id,
    }


def ticker(symbol: str, price: str) -> dict:
    return {"type": "ticker", "symbol": symbol, "price": price, "timestamp": "2026-01-01T00:00:00.000Z"}


def in_thread(function):
    """A service or selector, callable from an async test (the ORM runs in its own thread)."""
    return database_sync_to_async(function)


class Inbox:
    """Joins a user's trading groups on the in-memory channel layer and reads what is published."""

    def __init__(self, layer, channel: str, group_names: list[str]):
        self.layer, self.channel, self.group_names = layer, channel, group_names

    @classmethod
    async def join(cls, user_id: int, *channels: str) -> Inbox:
        layer = get_channel_layer(groups.TRADING_LAYER)
        channel = await layer.new_channel()
        names = [groups.user(user_id, c) for c in channels or ("orders", "risk_alerts", "bot_status", "portfolio")]
        for name in names:
            await layer.group_add(name, channel)
        return cls(layer, channel, names)

    async def leave(self) -> None:
        for name in self.group_names:
            await self.layer.group_discard(name, self.channel)

    async def next(self, kind: str | None = None, timeout: float = TIMEOUT) -> dict:
        """The next message (of that type, skipping others)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.layer.receive(self.channel)
                message = orjson.loads(event["text"])
                if kind is None or message["type"] == kind:
                    return message

    async def all(self, within: float = 0.3) -> list[dict]:
        """Everything that arrives until the inbox stays quiet for `within` seconds."""
        messages = []
        while True:
            try:
                messages.append(await self.next(timeout=within))
            except TimeoutError:
                return messages
