"""/ws/market over real sockets, fed by publishing into Redis exactly as the worker does."""

from __future__ import annotations

import itertools

import pytest

from marketdata import latest
from realtime import protocol
from tests import messages
from tests.integration.harness import Client
from tests.support import access_token

_stamps = itertools.count(1)


def ticker(symbol: str, price: str = "50000.00") -> dict:
    """A ticker with a timestamp of its own, so tests find it among a live worker's tickers."""
    return messages.ticker(symbol, price, price_change="-12.50", price_change_percent="-0.025", timestamp=unique_time())


def trade(symbol: str, price: str = "50000.01", side: str = "sell") -> dict:
    return messages.trade(symbol, price, side, quantity="0.00100000", timestamp=unique_time())


def book(symbol: str, bid: str = "49999.99") -> dict:
    return messages.orderbook(symbol, bid, timestamp=unique_time())


def unique_time() -> str:
    return protocol.iso_from_millis(1_700_000_000_000 + next(_stamps))


async def market(gateway) -> Client:
    return await Client.connect(f"{gateway.ws}/ws/market")


async def test_market_subscriptions_are_acknowledged_with_their_stream(gateway):
    async with await market(gateway) as client:
        for stream in ("ticker", "trades", "orderbook"):
            ack = await client.request({"type": f"subscribe_{stream}", "symbols": ["BTCUSDT", "ethusdt"]})
            assert ack["type"] == "subscribed" and ack["stream"] == stream and ack["symbols"] == ["BTCUSDT", "ETHUSDT"]
            ack = await client.request({"type": f"unsubscribe_{stream}", "symbols": ["ETHUSDT"]})
            assert ack["type"] == "unsubscribed" and ack["stream"] == stream and ack["symbols"] == ["ETHUSDT"]


async def test_ticker_values_reach_the_client_unchanged(gateway, redis_publish):
    async with await market(gateway) as client:
        await client.subscribe({"type": "subscribe_ticker", "symbols": ["ADAUSDT"]})
        sent = ticker("ADAUSDT", price="0.38420000")
        frame = await redis_publish.apublish_market(sent)
        got = await client.recv_until(lambda m: m.get("timestamp") == sent["timestamp"])
    assert got == {**sent, "seq": frame.seq}


async def test_trades_and_books_reach_the_client_unchanged(gateway, redis_publish):
    async with await market(gateway) as client:
        await client.subscribe({"type": "subscribe_trades", "symbols": ["BTCUSDT"]})
        await client.subscribe({"type": "subscribe_orderbook", "symbols": ["BTCUSDT"]})
        sent_trade, sent_book = trade("BTCUSDT"), book("BTCUSDT", bid="49999.98")
        trade_frame = await redis_publish.apublish_market(sent_trade)
        book_frame = await redis_publish.apublish_market(sent_book)
        got_trade = await client.recv_until(lambda m: m["type"] == "trade" and m["trade_id"] == sent_trade["trade_id"])
        got_book = await client.recv_until(lambda m: m["type"] == "orderbook" and m["bids"][0][0] == "49999.98")
    assert got_trade == {**sent_trade, "seq": trade_frame.seq}
    assert got_book == {**sent_book, "seq": book_frame.seq}


async def seen_until(client: Client, marker: dict) -> list[dict]:
    """Every ticker that arrives up to and including `marker`."""
    seen = []
    while not seen or seen[-1].get("timestamp") != marker["timestamp"]:
        seen.append(await client.recv_until(lambda m: m["type"] == "ticker"))
    return seen


async def test_a_client_gets_only_the_symbols_it_subscribed(gateway, redis_publish):
    async with await market(gateway) as client:
        await client.subscribe({"type": "subscribe_ticker", "symbols": ["SOLUSDT"]})
        await redis_publish.apublish_market(ticker("XRPUSDT"))
        marker = ticker("SOLUSDT")
        await redis_publish.apublish_market(marker)
        seen = await seen_until(client, marker)
    assert {m["symbol"] for m in seen} == {"SOLUSDT"}


async def test_unsubscribe_stops_the_flow(gateway, redis_publish):
    async with await market(gateway) as client:
        await client.subscribe({"type": "subscribe_ticker", "symbols": ["BNBUSDT", "XRPUSDT"]})
        flowing = ticker("BNBUSDT")
        await redis_publish.apublish_market(flowing)
        await seen_until(client, flowing)  # it flows
        await client.request({"type": "unsubscribe_ticker", "symbols": ["BNBUSDT"]})
        late = ticker("BNBUSDT")
        await redis_publish.apublish_market(late)
        marker = ticker("XRPUSDT")
        await redis_publish.apublish_market(marker)
        seen = await seen_until(client, marker)
    assert late["timestamp"] not in {m.get("timestamp") for m in seen}


async def test_a_new_subscriber_gets_the_last_ticker_and_book_at_once(gateway, redis_publish):
    last_ticker, last_book = ticker("ETHUSDT", price="3000.12"), book("ETHUSDT", bid="2999.99")
    await latest.astore_snapshot("ticker", "ETHUSDT", protocol.encode(last_ticker))
    await latest.astore_snapshot("orderbook", "ETHUSDT", protocol.encode(last_book))
    async with await market(gateway) as client:
        ack = await client.request({"type": "subscribe_ticker", "symbols": ["ETHUSDT"]})
        first = await client.recv()
        await client.subscribe({"type": "subscribe_orderbook", "symbols": ["ETHUSDT"]})
        second = await client.recv()
    assert ack["type"] == "subscribed"
    assert first == last_ticker and second == last_book


async def test_unknown_symbol_is_rejected_whole_and_nothing_is_subscribed(gateway, redis_publish):
    async with await market(gateway) as client:
        error = await client.request({"type": "subscribe_ticker", "symbols": ["BTCUSDT", "DOGEMOON"]})
        assert error["code"] == 4004 and error["invalid"] == ["DOGEMOON"]
        await client.subscribe({"type": "subscribe_ticker", "symbols": ["ETHUSDT"]})
        await redis_publish.apublish_market(ticker("BTCUSDT"))
        marker = ticker("ETHUSDT")
        await redis_publish.apublish_market(marker)
        seen = await seen_until(client, marker)
    assert {m["symbol"] for m in seen} == {"ETHUSDT"}


@pytest.mark.parametrize(
    "frame",
    [
        "nope",
        '{"type": "subscribe_ticker"}',
        '{"type": "subscribe_ticker", "symbols": "BTCUSDT"}',
        '{"type": "subscribe_ticker", "symbols": ["BTC USDT"]}',
        '{"type": "subscribe", "channels": ["orders"]}',
        '{"type": "subscribe_ticker", "symbols": [' + ",".join(['"BTCUSDT"'] * 51) + "]}",
    ],
)
async def test_invalid_market_requests_get_4004_and_the_connection_stays_open(gateway, frame):
    async with await market(gateway) as client:
        error = await client.request(frame, "error")
        assert error["code"] == 4004
        assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"


async def test_trading_subscribe_symbol_receives_the_same_ticker_groups(gateway, stack, redis_publish):
    url = f"{gateway.ws}/ws/trading?token={access_token(stack.users['alice'])}"
    async with await Client.connect(url) as trading, await market(gateway) as public:
        await trading.subscribe({"type": "subscribe_symbol", "symbols": ["ADAUSDT"]})
        await public.subscribe({"type": "subscribe_ticker", "symbols": ["ADAUSDT"]})
        sent = ticker("ADAUSDT", price="0.40000000")
        frame = await redis_publish.apublish_market(sent)
        a = await trading.recv_until(lambda m: m.get("timestamp") == sent["timestamp"])
        b = await public.recv_until(lambda m: m.get("timestamp") == sent["timestamp"])
    assert a == b == {**sent, "seq": frame.seq}


async def test_market_flooding_gets_4029(gateway):
    async with await market(gateway) as client:
        for _ in range(200):
            await client.send({"type": "ping"})
        error = await client.recv_until(lambda m: m["type"] == "error")
        code, _ = await client.closed()
    assert error["code"] == 4029 and code == 4029
