"""ccxt (REST) and ccxt.pro (WebSocket streams, order book) against the local exchange."""

from __future__ import annotations

import asyncio

import ccxt
import ccxt.pro
from _support import TIMEOUT, Seen, check_unsubscribed, control, done, rest, urls, warm_up

MARKETS = ("BTC/USDT", "ETH/USDT")


def local(exchange_class, rest_url: str, ws_url: str):
    exchange = exchange_class({"options": {"fetchMarkets": {"types": ["spot"]}, "defaultType": "spot"}})
    api = exchange.urls["api"]
    for name in ("public", "private"):
        api[name] = f"{rest_url}/api/v3"
    api["v1"] = f"{rest_url}/api/v1"
    if "ws" in api:
        api["ws"]["spot"] = f"{ws_url}/ws"
    return exchange


def rest_calls(rest_url: str, ws_url: str) -> dict:
    exchange = local(ccxt.binance, rest_url, ws_url)
    markets = exchange.load_markets()
    answers = {
        "time": exchange.fetch_time(),
        "exchangeInfo": markets["BTC/USDT"],
        "depth": exchange.fetch_order_book("BTC/USDT", limit=10),
        "trades": exchange.fetch_trades("BTC/USDT", limit=5),
        "aggTrades": exchange.fetch_trades("ETH/USDT", limit=5, params={"method": "publicGetAggTrades"}),
        "klines": exchange.fetch_ohlcv("BTC/USDT", "1m", limit=5),
        "avgPrice": exchange.public_get_avgprice({"symbol": "BTCUSDT"}),
        "ticker/24hr": exchange.fetch_ticker("BTC/USDT"),
        "tickers": exchange.fetch_tickers(list(MARKETS)),
        "ticker/price": exchange.fetch_last_prices(list(MARKETS)),
        "ticker/bookTicker": exchange.fetch_bids_asks(list(MARKETS)),
    }
    assert set(markets) >= set(MARKETS) and markets["BTC/USDT"]["precision"]["price"]
    assert len(answers["depth"]["bids"]) == 10 and answers["depth"]["nonce"]
    assert len(answers["trades"]) == 5 and all(t["price"] for t in answers["trades"])
    assert len(answers["aggTrades"]) == 5
    assert answers["klines"] and all(len(candle) == 6 for candle in answers["klines"])
    assert answers["ticker/24hr"]["symbol"] == "BTC/USDT" and answers["ticker/24hr"]["last"]
    assert set(answers["tickers"]) == set(MARKETS)
    assert set(answers["ticker/price"]) == set(MARKETS)
    assert set(answers["ticker/bookTicker"]) == set(MARKETS)
    return {name: type(body).__name__ for name, body in answers.items()}


async def watch(seen: Seen, exchange, kind: str, market: str) -> None:
    symbol = market.replace("/", "")
    while True:
        if kind == "trade":
            for trade in await exchange.watch_trades(market):
                seen.add(symbol, kind, trade["id"])
        else:
            await (exchange.watch_ticker if kind == "ticker" else exchange.watch_order_book)(market)
            seen.add(symbol, kind)


async def streams(rest_url: str, ws_url: str) -> tuple[dict, int]:
    exchange = local(ccxt.pro.binance, rest_url, ws_url)
    seen = Seen()
    tasks = []
    try:
        await exchange.load_markets()
        for market in MARKETS:
            for kind in ("ticker", "trade", "depth"):
                tasks.append(asyncio.create_task(watch(seen, exchange, kind, market), name=f"{kind} {market}"))
        await asyncio.to_thread(seen.wait_all)
        await exchange.un_watch_trades("ETH/USDT")
        listening = await asyncio.to_thread(check_unsubscribed, seen, rest_url)
        return listening, await order_book(exchange, rest_url)
    finally:
        for task in tasks:
            task.cancel()
        await exchange.close()


async def order_book(exchange, rest_url: str) -> int:
    """watch_order_book's book equals the REST snapshot once the feed is paused and the last diffs are in."""
    control(rest_url, "pause")
    try:
        snapshot = rest(rest_url, "/api/v3/depth?symbol=ETHUSDT&limit=1000")
        expected = (
            [[float(p), float(q)] for p, q in snapshot["bids"]],
            [[float(p), float(q)] for p, q in snapshot["asks"]],
        )
        async with asyncio.timeout(TIMEOUT):
            while True:
                book = exchange.orderbooks.get("ETH/USDT")
                if book is not None and (book["bids"][:], book["asks"][:]) == expected:
                    return len(expected[0]) + len(expected[1])
                await asyncio.sleep(0.05)  # polls the library's book; the diffs arrive on their own
    finally:
        control(rest_url, "resume")


if __name__ == "__main__":
    rest_url, ws_url = urls()
    warm_up(rest_url)
    models = rest_calls(rest_url, ws_url)
    listening, levels = asyncio.run(streams(rest_url, ws_url))
    done("ccxt", rest=models, subscriptions=listening, order_book_levels=levels)
