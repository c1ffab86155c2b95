"""sync_symbols against the local exchange's real /api/v3/exchangeInfo over a socket."""

from __future__ import annotations

import asyncio
import io
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command

from marketdata import normalize, services
from marketdata.exceptions import NormalizeError
from marketdata.exchange_server import ExchangeSimulator, SimulatorConfig
from marketdata.models import Symbol
from tests.support import TIMEOUT


def info(name: str, status: str = "TRADING", step: str = "0.00001000") -> normalize.SymbolInfo:
    return normalize.SymbolInfo(name, status, name[:-4], "USDT", step, "0.01000000", "5.00000000")


def test_exchange_symbols_reads_the_lot_price_and_notional_filters():
    body = {
        "symbols": [
            {
                "symbol": "BTCUSDT",
                "status": "TRADING",
                "baseAsset": "BTC",
                "quoteAsset": "USDT",
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": "0.01000000"},
                    {"filterType": "LOT_SIZE", "stepSize": "0.00001000"},
                    {"filterType": "NOTIONAL", "minNotional": "5.00000000"},
                ],
            }
        ]
    }
    (btc,) = normalize.exchange_symbols(body)
    assert (btc.name, btc.step_size, btc.tick_size, btc.min_notional) == (
        "BTCUSDT",
        "0.00001000",
        "0.01000000",
        "5.00000000",
    )
    assert btc.trading


def test_exchange_symbols_refuses_a_malformed_answer():
    with pytest.raises(NormalizeError):
        normalize.exchange_symbols({"symbols": [{"symbol": "BTC/USDT", "status": "TRADING"}]})


@pytest.mark.django_db
def test_sync_enables_wanted_trading_symbols_and_disables_those_that_stopped():
    Symbol.objects.create(name="OLDUSDT", enabled=True)
    Symbol.objects.create(name="BTCUSDT", enabled=True, step_size=Decimal("1"))
    summary = services.symbol_sync(
        infos=[info("BTCUSDT"), info("ETHUSDT"), info("OLDUSDT", status="BREAK"), info("XYZUSDT")],
        wanted=["BTCUSDT", "ETHUSDT"],
    )
    rows = {s.name: s for s in Symbol.objects.all()}
    assert rows["BTCUSDT"].enabled and rows["BTCUSDT"].step_size == Decimal("0.00001")
    assert rows["ETHUSDT"].enabled
    assert not rows["OLDUSDT"].enabled
    assert "XYZUSDT" not in rows
    assert summary["disabled"] == ["OLDUSDT"] and summary["enabled"] == ["ETHUSDT"]


@pytest.mark.django_db
def test_sync_with_all_adds_other_trading_symbols_disabled():
    services.symbol_sync(infos=[info("BTCUSDT"), info("XYZUSDT")], wanted=["BTCUSDT"], add_all=True)
    assert not Symbol.objects.get(name="XYZUSDT").enabled


@pytest.fixture
def exchange_in_a_thread():
    """The local exchange on its own event loop, so the command can run its own asyncio.run()."""
    started, stop = threading.Event(), None
    state = {}

    async def serve():
        nonlocal stop
        stop = asyncio.Event()
        async with ExchangeSimulator(SimulatorConfig(symbols=("BTCUSDT", "ETHUSDT"))).running() as exchange:
            state["url"] = exchange.rest_url
            state["loop"] = asyncio.get_running_loop()
            started.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(TIMEOUT)
    yield state["url"]
    state["loop"].call_soon_threadsafe(stop.set)
    thread.join(TIMEOUT)


@pytest.mark.django_db
def test_sync_symbols_command_loads_the_exchanges_list_over_http(settings, exchange_in_a_thread):
    from dataclasses import replace

    settings.APP = replace(settings.APP, binance_rest_url=exchange_in_a_thread, market_symbols=("BTCUSDT",))
    out = io.StringIO()
    call_command("sync_symbols", "--all", stdout=out)
    rows = dict(Symbol.objects.values_list("name", "enabled"))
    assert rows == {"BTCUSDT": True, "ETHUSDT": False}
    assert "enabled: 1 BTCUSDT" in out.getvalue()


@pytest.mark.django_db
def test_sync_symbols_command_says_what_failed_when_the_exchange_is_down(settings):
    from dataclasses import replace

    from django.core.management.base import CommandError

    settings.APP = replace(settings.APP, binance_rest_url="http://127.0.0.1:9")
    with pytest.raises(CommandError, match="could not load exchangeInfo"):
        call_command("sync_symbols", timeout=2)
