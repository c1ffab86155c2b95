"""The default symbols are seeded with Binance's real filters, so the demo trades by the real rules."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command

from accounts import services as account_services
from accounts.exceptions import InvalidInput
from accounts.models import Order
from marketdata import latest, services
from marketdata.exchange_model import PROFILES
from marketdata.known_symbols import KNOWN_SYMBOLS
from marketdata.models import Symbol

pytestmark = pytest.mark.django_db

DEFAULTS = ("BTCUSDT", "ETHUSDT", "ADAUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT")


def filters(name: str) -> tuple:
    row = Symbol.objects.get(name=name)
    return row.base_asset, row.quote_asset, row.tick_size, row.step_size, row.min_notional


def test_every_default_symbol_ships_its_filters():
    assert set(DEFAULTS) <= set(KNOWN_SYMBOLS)
    for name, info in KNOWN_SYMBOLS.items():
        assert info.base_asset + info.quote_asset == name
        assert Decimal(info.tick_size) > 0 and Decimal(info.step_size) > 0 and Decimal(info.min_notional) > 0
        # The local exchange walks on the same grid, so its prices are always on the tick.
        assert (Decimal(PROFILES[name][1]), Decimal(PROFILES[name][2])) == (
            Decimal(info.tick_size),
            Decimal(info.step_size),
        )


def test_the_workers_first_seed_uses_the_shipped_filters():
    assert services.symbol_seed_defaults(names=["BTCUSDT", "adausdt", "DOGEUSDT"]) == 3

    assert filters("BTCUSDT") == ("BTC", "USDT", Decimal("0.01"), Decimal("0.00001"), Decimal(5))
    assert filters("ADAUSDT") == ("ADA", "USDT", Decimal("0.0001"), Decimal("0.1"), Decimal(5))
    base, quote, *_, notional = filters("DOGEUSDT")  # unknown: assets from the name, no filters
    assert (base, quote, notional) == ("DOGE", "USDT", 0)


def test_seed_demo_creates_the_symbols_with_filters(settings):
    settings.APP = dataclasses.replace(settings.APP, market_symbols=DEFAULTS)
    call_command("seed_demo")

    for name in DEFAULTS:
        info = KNOWN_SYMBOLS[name]
        assert filters(name) == (
            info.base_asset,
            info.quote_asset,
            Decimal(info.tick_size),
            Decimal(info.step_size),
            Decimal(info.min_notional),
        )


def test_seed_demo_fills_placeholder_filters_of_an_older_database_but_keeps_synced_ones():
    Symbol.objects.create(name="BTCUSDT")  # seeded before filters shipped: the model's placeholders
    Symbol.objects.create(name="ETHUSDT", base_asset="ETH", quote_asset="USDT", tick_size=Decimal("0.1"))

    assert services.symbol_seed_demo(names=["BTCUSDT", "ETHUSDT"]) == ["BTCUSDT"]
    assert filters("BTCUSDT")[2:] == (Decimal("0.01"), Decimal("0.00001"), Decimal(5))
    assert filters("ETHUSDT")[2] == Decimal("0.1")  # sync_symbols or the admin set it: left alone
    assert services.symbol_seed_demo(names=["BTCUSDT", "ETHUSDT"]) == []


def test_a_price_off_its_tick_is_refused_on_the_seeded_symbols():
    cache.clear()
    services.symbol_seed_defaults(names=DEFAULTS)
    trader = get_user_model().objects.create_user(username="tick-tester")
    latest.record_trade_price("BTCUSDT", "50000.00")
    place = dict(user_id=trader.pk, symbol="BTCUSDT", side="buy", order_type="limit")

    with pytest.raises(InvalidInput, match=r"tick size 0\.01"):
        account_services.order_place(**place, quantity=Decimal("0.01"), price=Decimal("45000.005"))
    with pytest.raises(InvalidInput, match="step"):
        account_services.order_place(**place, quantity=Decimal("0.000001"), price=Decimal("45000"))
    with pytest.raises(InvalidInput, match="below BTCUSDT's minimum of 5"):
        account_services.order_place(**place, quantity=Decimal("0.00001"), price=Decimal("45000"))
    assert not Order.objects.exists()

    order = account_services.order_place(**place, quantity=Decimal("0.01"), price=Decimal("45000.01"))
    assert order.status == "new"
