"""marketdata.latest: many prices and snapshots stored at once, read back as single stores would be."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache

from marketdata import latest


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


async def test_market_state_stores_prices_and_snapshots_as_single_writes_would():
    await latest.astore_market_state(
        prices={"BTCUSDT": ("50000.10", 1_700_000_000_000), "ETHUSDT": ("3000", None)},
        snapshots={("ticker", "BTCUSDT"): '{"type":"ticker"}', ("orderbook", "BTCUSDT"): '{"type":"orderbook"}'},
    )

    btc = latest.last_trade("BTCUSDT")
    assert btc == latest.LastTrade(Decimal("50000.10"), 1_700_000_000_000)
    assert latest.last_trade("ETHUSDT").price == Decimal("3000")
    assert latest.last_trade("ETHUSDT").age() < 60  # stamped when stored
    assert await latest.asnapshots("ticker", ["BTCUSDT", "ETHUSDT"]) == {"BTCUSDT": '{"type":"ticker"}'}
    assert await latest.asnapshots("orderbook", ["BTCUSDT"]) == {"BTCUSDT": '{"type":"orderbook"}'}


async def test_market_state_with_nothing_to_store_stores_nothing():
    await latest.astore_market_state()
    await latest.astore_market_state(prices={}, snapshots={})
    assert latest.last_trade("BTCUSDT") is None
