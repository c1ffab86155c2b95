"""The official binance-sdk-spot (REST API and WebSocket Streams) against the local exchange."""

from __future__ import annotations

import asyncio

from _support import SYMBOLS, TIMEOUT, Seen, check_unsubscribed, done, urls, warm_up
from binance_sdk_spot.rest_api.models import KlinesIntervalEnum
from binance_sdk_spot.spot import ConfigurationRestAPI, ConfigurationWebSocketStreams, Spot


def rest_calls(client: Spot) -> dict:
    api = client.rest_api
    answers = {
        "ping": api.ping(),
        "time": api.time(),
        "exchangeInfo": api.exchange_info(symbols=list(SYMBOLS)),
        "depth": api.depth("BTCUSDT", limit=10),
        "trades": api.get_trades("BTCUSDT", limit=5),
        "aggTrades": api.agg_trades("BTCUSDT", limit=5),
        "klines": api.klines("BTCUSDT", KlinesIntervalEnum.INTERVAL_1m, limit=5),
        "avgPrice": api.avg_price("BTCUSDT"),
        "ticker/24hr": api.ticker24hr(symbol="BTCUSDT"),
        "ticker/price": api.ticker_price(symbol="ETHUSDT"),
        "ticker/bookTicker": api.ticker_book_ticker(symbol="ETHUSDT"),
    }
    models = {name: response.data() for name, response in answers.items()}
    assert models["time"].server_time > 0
    assert [s.symbol for s in models["exchangeInfo"].symbols] == list(SYMBOLS)
    assert len(models["depth"].bids) == 10 and models["depth"].last_update_id > 0
    assert len(models["trades"]) == 5 and all(t.price for t in models["trades"])
    assert len(models["aggTrades"]) == 5 and all(a.a is not None for a in models["aggTrades"])
    assert models["klines"] and all(len(k) == 12 for k in models["klines"])
    assert models["avgPrice"].mins == 5
    assert models["ticker/24hr"].actual_instance.symbol == "BTCUSDT"
    assert models["ticker/price"].actual_instance.symbol == "ETHUSDT"
    assert models["ticker/bookTicker"].actual_instance.ask_price
    return {name: type(model).__name__ for name, model in models.items()}


async def streams(client: Spot, rest_url: str) -> dict:
    seen = Seen()
    connection = await client.websocket_streams.create_connection()
    handles = {}
    try:
        for symbol in SYMBOLS:
            name = symbol.lower()
            for kind, subscribe in (
                ("ticker", connection.ticker),
                ("trade", connection.trade),
                ("depth", connection.diff_book_depth),
            ):
                handle = await subscribe(symbol=name)
                handle.on("message", lambda data, s=symbol, k=kind: seen.add(s, k, getattr(data, "t", None)))
                handles[(symbol, kind)] = handle
                await asyncio.sleep(0.25)  # Binance cuts a connection sending more than 5 messages a second
        await asyncio.to_thread(seen.wait_all)
        await handles[("ETHUSDT", "trade")].unsubscribe()
        return await asyncio.to_thread(check_unsubscribed, seen, rest_url)
    finally:
        await asyncio.wait_for(connection.close_connection(close_session=True), TIMEOUT)


if __name__ == "__main__":
    rest_url, ws_url = urls()
    warm_up(rest_url)
    spot = Spot(
        config_rest_api=ConfigurationRestAPI(base_path=rest_url),
        config_ws_streams=ConfigurationWebSocketStreams(stream_url=ws_url),
    )
    models = rest_calls(spot)
    listening = asyncio.run(streams(spot, rest_url))
    done("binance-sdk-spot", rest=models, subscriptions=listening)
