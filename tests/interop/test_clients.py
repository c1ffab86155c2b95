"""Real Binance client libraries accept the local exchange as Binance (the sandbox of the README).

Each library runs in the interop virtualenv against its own `simulate_exchange` process and checks,
in its own terms (tests/interop/clients/): every REST market data endpoint parses into the library's
models, its stream client receives ticker, trade and depth for two symbols, a live unsubscribe
stops one stream while the others keep coming (where the library has one), and python-binance's
depth cache and ccxt.pro's watch_order_book hold a book equal to the REST snapshot.
"""

from __future__ import annotations

import re

import pytest

from tests.interop.conftest import SCRIPTS

pytestmark = pytest.mark.slow

REST_ENDPOINTS = {
    "depth", "trades", "aggTrades", "klines", "avgPrice", "ticker/24hr", "ticker/price", "ticker/bookTicker",
    "exchangeInfo", "time",
}  # fmt: skip


@pytest.mark.parametrize("library", list(SCRIPTS))
def test_the_library_works_against_the_local_exchange(interop_runs, library):
    run = interop_runs[library]

    assert run.returncode == 0, run.output[-6000:]
    assert set(run.facts["rest"]) >= REST_ENDPOINTS, run.facts


def test_the_official_sdk_parses_rest_answers_into_its_own_models(interop_runs):
    models = interop_runs["binance-sdk-spot"].facts["rest"]

    assert models["depth"] == "DepthResponse"
    assert models["ticker/24hr"] == "Ticker24hrResponse"
    assert models["avgPrice"] == "AvgPriceResponse"


@pytest.mark.parametrize("library", ["binance-connector", "binance-sdk-spot", "ccxt"])
def test_a_live_unsubscribe_left_the_other_streams_subscribed(interop_runs, library):
    listening = interop_runs[library].facts["subscriptions"]
    streams = set().union(*listening.values())

    assert "ethusdt@trade" not in streams
    assert {"btcusdt@trade", "ethusdt@depth@100ms" if library != "binance-sdk-spot" else "ethusdt@depth"} <= streams


def test_ccxt_pro_opened_raw_connections_by_index_and_subscribed_on_them(interop_runs):
    paths = set(interop_runs["ccxt"].facts["subscriptions"])

    assert paths and all(re.fullmatch(r"/ws/\d+", path) for path in paths), paths


@pytest.mark.parametrize(("library", "fact"), [("python-binance", "depth_cache_levels"), ("ccxt", "order_book_levels")])
def test_the_librarys_own_order_book_equalled_the_rest_snapshot(interop_runs, library, fact):
    assert interop_runs[library].facts.get(fact) == 100, interop_runs[library].output[-6000:]  # 50 levels a side
