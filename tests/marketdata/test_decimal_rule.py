"""Prices and quantities are never floats: strings on the wire, Decimal in arithmetic, nothing in between."""

from __future__ import annotations

import random

import orjson
import pytest

from marketdata import normalize
from marketdata.exceptions import NormalizeError
from marketdata.exchange_model import SimulatedMarket
from tests.marketdata.builders import DEPTH_UPDATE_SAMPLE, TICKER_SAMPLE, TRADE_SAMPLE, raw, sample

TICKER_PRICE_FIELDS = ("price", "price_change", "price_change_percent", "high_price", "low_price", "volume")


@pytest.mark.parametrize(
    ("payload", "field"),
    [(TICKER_SAMPLE, "c"), (TICKER_SAMPLE, "h"), (TRADE_SAMPLE, "p"), (TRADE_SAMPLE, "q")],
)
def test_a_price_sent_as_a_json_number_is_refused(payload, field):
    with pytest.raises(NormalizeError, match="decimal string"):
        normalize.parse_frame(raw(sample(payload, **{field: 12.5})))


def test_a_depth_level_sent_as_json_numbers_is_refused():
    with pytest.raises(NormalizeError):
        normalize.parse_frame(raw(sample(DEPTH_UPDATE_SAMPLE, b=[[0.0024, 10]])))


def test_our_messages_carry_prices_as_strings():
    ticker = normalize.parse_frame(raw(TICKER_SAMPLE)).message
    trade = normalize.parse_frame(raw(TRADE_SAMPLE)).message

    assert all(isinstance(ticker[f], str) for f in TICKER_PRICE_FIELDS)
    assert isinstance(trade["price"], str)
    assert isinstance(trade["quantity"], str)


def test_the_simulator_sends_every_price_and_quantity_as_a_string():
    market = SimulatedMarket("BTCUSDT", random.Random(1), levels=5)
    market.step_book()
    payloads = [market.ticker(1), market.random_trade(1), market.fast.flush("BTCUSDT", 1), market.depth_snapshot(5)]

    for payload in payloads:
        decoded = orjson.loads(orjson.dumps(payload))
        numbers = [k for k, v in decoded.items() if isinstance(v, float)]
        levels = [lv for key in ("b", "a", "bids", "asks") for lv in decoded.get(key, [])]
        assert not numbers, f"{decoded.get('e', 'snapshot')} has float fields {numbers}"
        assert all(isinstance(x, str) for level in levels for x in level)
