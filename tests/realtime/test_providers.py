"""realtime.providers: what the gateway gets from the apps that register, and its defaults without them."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from realtime import providers as module
from realtime.protocol import Stream
from realtime.providers import Providers
from realtime.session import MarketSub, UserSub

BTC_TICKER, ETH_TICKER = MarketSub(Stream.TICKER, "BTCUSDT"), MarketSub(Stream.TICKER, "ETHUSDT")
BTC_BOOK, BTC_TRADES = MarketSub(Stream.ORDERBOOK, "BTCUSDT"), MarketSub(Stream.TRADES, "BTCUSDT")


@pytest.fixture
def fresh(monkeypatch) -> Providers:
    """The process-wide providers as they are before any app registered."""
    nothing_registered = Providers()
    monkeypatch.setattr(module, "providers", nothing_registered)
    return nothing_registered


class StoredMarket:
    """Market snapshots as the marketdata app would serve them, recording each call."""

    def __init__(self, stored: dict[tuple[Stream, str], str]) -> None:
        self.stored = stored
        self.calls: list[tuple[Stream, tuple[str, ...]]] = []

    async def __call__(self, stream: Stream, symbols: tuple[str, ...]) -> dict[str, str]:
        self.calls.append((stream, symbols))
        return {symbol: self.stored[stream, symbol] for symbol in symbols if (stream, symbol) in self.stored}


def orders_of(user_id: int):
    async def snapshot(asked_for: int) -> list[dict]:
        assert asked_for == user_id
        return [{"type": "order_update", "order_id": "1"}, {"type": "order_update", "order_id": "2"}]

    return snapshot


# --- nothing registered ---------------------------------------------------------------------------


async def test_without_a_market_app_the_configured_symbols_are_enabled(settings):
    settings.APP = dataclasses.replace(settings.APP, market_symbols=("BTCUSDT", "ETHUSDT"))

    assert await Providers().enabled_symbols() == frozenset({"BTCUSDT", "ETHUSDT"})


async def test_without_a_market_app_there_are_no_market_snapshots():
    assert await Providers().snapshots((BTC_TICKER, BTC_BOOK), user_id=None) == {}


def test_without_a_market_app_the_status_says_no_worker_is_running():
    assert Providers().market_status() == {"connected": False, "worker": "not running"}


async def test_a_channel_nobody_registered_has_an_empty_snapshot():
    assert await Providers().channel_snapshot("orders", 7) == []
    assert await Providers().snapshots((UserSub("orders"),), user_id=7) == {UserSub("orders"): []}


# --- registration -------------------------------------------------------------------------------


async def test_the_market_app_registers_symbols_snapshots_and_status(fresh):
    async def enabled() -> frozenset[str]:
        return frozenset({"SOLUSDT"})

    stored = StoredMarket({(Stream.TICKER, "SOLUSDT"): "sol"})

    module.register_market(enabled_symbols=enabled, market_snapshots=stored, market_status=lambda: {"connected": True})

    assert await fresh.enabled_symbols() == frozenset({"SOLUSDT"})
    assert await fresh.snapshots((MarketSub(Stream.TICKER, "SOLUSDT"),), None) == {
        MarketSub(Stream.TICKER, "SOLUSDT"): ["sol"]
    }
    assert fresh.market_status() == {"connected": True}


async def test_an_app_registers_a_channel_snapshot(fresh):
    module.register_channel_snapshot("orders", orders_of(7))

    messages = await fresh.channel_snapshot("orders", 7)

    assert [m["order_id"] for m in messages] == ["1", "2"]
    assert await fresh.channel_snapshot("portfolio", 7) == []


def test_the_installed_apps_registered_the_market_and_the_stateful_channels():
    assert module.providers.enabled_symbols is not module._configured_symbols
    assert set(module.providers.channel_snapshots) == {"orders", "bot_status", "portfolio"}


# --- snapshots() ----------------------------------------------------------------------------------


async def test_market_snapshots_are_fetched_once_per_stream_with_all_its_symbols_in_order():
    stored = StoredMarket({})
    found = Providers(market_snapshots=stored)

    await found.snapshots((BTC_TICKER, BTC_BOOK, ETH_TICKER), user_id=None)

    assert stored.calls == [(Stream.TICKER, ("BTCUSDT", "ETHUSDT")), (Stream.ORDERBOOK, ("BTCUSDT",))]


async def test_each_market_snapshot_is_filed_under_its_own_subscription():
    stored = StoredMarket(
        {
            (Stream.TICKER, "BTCUSDT"): "btc ticker",
            (Stream.TICKER, "ETHUSDT"): "eth ticker",
            (Stream.ORDERBOOK, "BTCUSDT"): "btc book",
        }
    )

    found = await Providers(market_snapshots=stored).snapshots((BTC_TICKER, BTC_BOOK, ETH_TICKER), user_id=None)

    assert found == {BTC_TICKER: ["btc ticker"], BTC_BOOK: ["btc book"], ETH_TICKER: ["eth ticker"]}


async def test_a_symbol_with_no_stored_state_yet_has_no_snapshot():
    stored = StoredMarket({(Stream.TICKER, "BTCUSDT"): "btc ticker"})

    found = await Providers(market_snapshots=stored).snapshots((BTC_TICKER, ETH_TICKER), user_id=None)

    assert found == {BTC_TICKER: ["btc ticker"]}


async def test_without_market_subscriptions_the_market_is_not_asked():
    stored = StoredMarket({})

    await Providers(market_snapshots=stored, channel_snapshots={"orders": orders_of(7)}).snapshots(
        (UserSub("orders"),), user_id=7
    )

    assert stored.calls == []


async def test_channel_snapshots_are_the_users_messages_encoded_in_order():
    found = await Providers(channel_snapshots={"orders": orders_of(7)}).snapshots((UserSub("orders"),), user_id=7)

    assert [orjson.loads(text)["order_id"] for text in found[UserSub("orders")]] == ["1", "2"]


async def test_channel_snapshots_need_a_user():
    found = await Providers(channel_snapshots={"orders": orders_of(7)}).snapshots((UserSub("orders"),), user_id=None)

    assert found == {}


async def test_market_and_channel_snapshots_come_together():
    stored = StoredMarket({(Stream.TICKER, "BTCUSDT"): "btc ticker"})
    both = Providers(market_snapshots=stored, channel_snapshots={"orders": orders_of(7)})

    found = await both.snapshots((UserSub("orders"), BTC_TICKER, BTC_TRADES), user_id=7)

    assert set(found) == {UserSub("orders"), BTC_TICKER}
