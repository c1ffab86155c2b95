"""python-binance (AsyncClient, BinanceSocketManager, DepthCacheManager) against the local exchange.

python-binance has no live SUBSCRIBE: each socket names its streams in the URL.
"""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal

from _support import SYMBOLS, TIMEOUT, Seen, control, done, rest, urls, warm_up
from binance import AsyncClient, BinanceSocketManager, DepthCacheManager

KIND_OF = {"24hrTicker": "ticker", "trade": "trade", "depthUpdate": "depth"}


def local_client(rest_url: str) -> type[AsyncClient]:
    class LocalClient(AsyncClient):
        API_URL = f"{rest_url}/api"

    return LocalClient


def local_sockets(ws_url: str) -> type[BinanceSocketManager]:
    class LocalSockets(BinanceSocketManager):
        STREAM_URL = f"{ws_url}/"

    return LocalSockets


async def rest_calls(client: AsyncClient) -> dict:
    answers = {
        "ping": await client.ping(),
        "time": await client.get_server_time(),
        "exchangeInfo": await client.get_exchange_info(),
        "depth": await client.get_order_book(symbol="BTCUSDT", limit=10),
        "trades": await client.get_recent_trades(symbol="BTCUSDT", limit=5),
        "aggTrades": await client.get_aggregate_trades(symbol="BTCUSDT", limit=5),
        "klines": await client.get_klines(symbol="BTCUSDT", interval=AsyncClient.KLINE_INTERVAL_1MINUTE, limit=5),
        "historical klines": await client.get_historical_klines(
            "ETHUSDT", AsyncClient.KLINE_INTERVAL_1MINUTE, "1 day ago UTC"
        ),
        "avgPrice": await client.get_avg_price(symbol="BTCUSDT"),
        "ticker/24hr": await client.get_ticker(symbol="BTCUSDT"),
        "ticker/price": await client.get_symbol_ticker(symbol="ETHUSDT"),
        "ticker/bookTicker": await client.get_orderbook_ticker(symbol="ETHUSDT"),
        "symbol info": await client.get_symbol_info("ETHUSDT"),
    }
    assert {s["symbol"] for s in answers["exchangeInfo"]["symbols"]} == set(SYMBOLS)
    assert answers["symbol info"]["baseAsset"] == "ETH"
    assert len(answers["depth"]["bids"]) == 10
    assert answers["klines"] and answers["historical klines"]
    assert answers["ticker/24hr"]["symbol"] == "BTCUSDT"
    return {name: type(body).__name__ for name, body in answers.items()}


async def streams(sockets: BinanceSocketManager) -> None:
    seen = Seen()
    names = [f"{s.lower()}@{k}" for s in SYMBOLS for k in ("ticker", "trade", "depth@100ms")]
    async with asyncio.timeout(TIMEOUT), sockets.multiplex_socket(names) as socket:
        while not all(seen.count(s, k) for s in SYMBOLS for k in ("ticker", "trade", "depth")):
            message = await socket.recv()
            payload = message.get("data", {})
            if payload.get("e") in KIND_OF:
                seen.add(payload["s"], KIND_OF[payload["e"]])
            elif message.get("e") == "error":
                raise AssertionError(f"socket error: {message}")


def book(levels) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(str(price)), Decimal(str(quantity))) for price, quantity in levels]


async def depth_cache(client: AsyncClient, sockets: BinanceSocketManager, rest_url: str) -> int:
    """The depth cache equals the REST snapshot once the feed is paused and the last diffs are in."""
    manager = DepthCacheManager(client, "BTCUSDT", bm=sockets, limit=1000, conv_type=Decimal)
    async with asyncio.timeout(TIMEOUT), manager as cache_socket:
        for _ in range(3):
            cache = await cache_socket.recv()  # a few diffs applied on top of the snapshot
        control(rest_url, "pause")
        try:
            snapshot = rest(rest_url, "/api/v3/depth?symbol=BTCUSDT&limit=1000")
            expected = (book(snapshot["bids"]), book(snapshot["asks"]))
            while (book(cache.get_bids()), book(cache.get_asks())) != expected:
                cache = await cache_socket.recv()  # the diffs sent before the pause
        finally:
            control(rest_url, "resume")
    return len(expected[0]) + len(expected[1])


async def main(rest_url: str, ws_url: str) -> None:
    warm_up(rest_url)
    client = await local_client(rest_url).create()
    try:
        models = await rest_calls(client)
        sockets = local_sockets(ws_url)(client)
        await streams(sockets)
        levels = await depth_cache(client, sockets, rest_url)
    finally:
        await client.close_connection()
    done("python-binance", rest=models, depth_cache_levels=levels)


if __name__ == "__main__":
    asyncio.run(main(*urls()))
    sys.exit(0)
