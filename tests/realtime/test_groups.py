"""realtime.groups: the only place group names are built; channels only accepts a narrow alphabet."""

from __future__ import annotations

import re

import pytest

from realtime import groups
from realtime.protocol import TRADING_CHANNELS, Stream
from realtime.session import MarketSub, UserSub

# What channels' layers accept (BaseChannelLayer.group_name_regex), and the length limit.
LAYER_ALPHABET = re.compile(r"[A-Za-z0-9._-]+")
MAX_GROUP_NAME = 100


def every_group_name() -> list[str]:
    market = [groups.market(stream, symbol) for stream in Stream for symbol in ("BTCUSDT", "ethusdt", "1000SATSUSDT")]
    user = [groups.user(user_id, channel) for user_id in (1, 42, 10**12) for channel in TRADING_CHANNELS]
    return market + user


@pytest.mark.parametrize("name", every_group_name())
def test_every_group_name_uses_only_letters_digits_dash_underscore_and_dot(name):
    assert LAYER_ALPHABET.fullmatch(name), name


@pytest.mark.parametrize("name", every_group_name())
def test_every_group_name_is_under_one_hundred_characters(name):
    assert len(name) < MAX_GROUP_NAME


def test_group_names_are_accepted_by_the_channel_layer():
    from channels.layers import InMemoryChannelLayer

    layer = InMemoryChannelLayer()
    for name in every_group_name():
        assert layer.require_valid_group_name(name)


def test_market_group_is_lower_case_whatever_the_symbol_case():
    assert groups.market(Stream.TICKER, "BTCUSDT") == "market.ticker.btcusdt"
    assert groups.market(Stream.TICKER, "btcusdt") == "market.ticker.btcusdt"


@pytest.mark.parametrize("stream", ["ticker", "trades", "orderbook"])
def test_market_group_accepts_the_stream_as_a_string(stream):
    assert groups.market(stream, "ETHUSDT") == f"market.{stream}.ethusdt"


def test_market_groups_differ_per_stream_and_per_symbol():
    names = {groups.market(stream, symbol) for stream in Stream for symbol in ("BTCUSDT", "ETHUSDT")}

    assert len(names) == len(Stream) * 2


def test_an_unknown_stream_is_rejected():
    with pytest.raises(ValueError):
        groups.market("klines", "BTCUSDT")


@pytest.mark.parametrize("symbol", ["BTC/USDT", "BTC USDT", "BTCUSDT:1", "x" * 95])
def test_a_symbol_that_would_make_an_invalid_group_name_is_rejected(symbol):
    with pytest.raises(ValueError):
        groups.market(Stream.TICKER, symbol)


def test_a_symbol_with_a_trailing_newline_is_rejected():
    with pytest.raises(ValueError):
        groups.market(Stream.TICKER, "btcusdt\n")


def test_user_group_names_the_user_and_the_channel():
    assert groups.user(42, "orders") == "user.42.orders"


def test_user_groups_differ_per_user():
    assert groups.user(1, "orders") != groups.user(2, "orders")
    assert groups.user(1, "orders") != groups.user(11, "orders")


def test_user_groups_differ_per_channel():
    names = {groups.user(7, channel) for channel in TRADING_CHANNELS}

    assert len(names) == len(TRADING_CHANNELS)


def test_no_user_group_is_also_a_market_group():
    market = {groups.market(stream, "BTCUSDT") for stream in Stream}
    user = {groups.user(1, channel) for channel in TRADING_CHANNELS}

    assert not market & user


def test_a_user_id_from_a_token_claim_string_gives_the_same_group():
    assert groups.user("42", "orders") == groups.user(42, "orders")


@pytest.mark.parametrize("channel", ["balances", "Orders", "orders ", "", "market.ticker"])
def test_an_unknown_trading_channel_is_rejected(channel):
    with pytest.raises(ValueError, match="channel"):
        groups.user(1, channel)


@pytest.mark.parametrize("user_id", ["abc", "1.orders", None])
def test_a_user_id_that_is_not_a_number_is_rejected(user_id):
    with pytest.raises((TypeError, ValueError)):
        groups.user(user_id, "orders")


def test_a_user_id_too_long_for_a_group_name_is_rejected():
    with pytest.raises(ValueError):
        groups.user(10**100, "orders")


def test_market_and_trading_groups_live_on_their_own_layers():
    assert groups.MARKET_LAYER == "market"
    assert groups.TRADING_LAYER == "default"


# --- of(): a session's subscription -> (layer, group) ----------------------------------------------


@pytest.mark.parametrize("stream", list(Stream))
def test_a_market_subscription_is_a_market_group_on_the_market_layer(stream):
    assert groups.of(MarketSub(stream, "BTCUSDT"), None) == (groups.MARKET_LAYER, groups.market(stream, "BTCUSDT"))


def test_a_market_subscription_is_the_same_group_whoever_holds_it():
    sub = MarketSub(Stream.TICKER, "ETHUSDT")

    assert groups.of(sub, 1) == groups.of(sub, 2) == groups.of(sub, None)


@pytest.mark.parametrize("channel", TRADING_CHANNELS)
def test_a_channel_subscription_is_the_users_own_group_on_the_trading_layer(channel):
    assert groups.of(UserSub(channel), 42) == (groups.TRADING_LAYER, f"user.42.{channel}")


def test_a_channel_subscription_without_a_user_is_refused():
    with pytest.raises(ValueError, match="signed-in user"):
        groups.of(UserSub("orders"), None)
