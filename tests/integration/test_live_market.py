"""The whole market path over real sockets: local exchange -> runstream worker -> Redis -> daphne -> client.

Values are compared with what the exchange itself sent, read by a second client connected straight
to the exchange, so nothing here trusts our own normaliser.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
import websockets

from realtime.protocol import iso_from_millis
from tests.integration.harness import Client, ahttp_json
from tests.support import TIMEOUT

SLOW = TIMEOUT * 3  # reconnects go through backoff


async def market(gateway) -> Client:
    return await Client.connect(f"{gateway.ws}/ws/market")


async def exchange_feed(exchange, *streams: str):
    return await websockets.connect(f"{exchange.ws_url}/stream?streams={'/'.join(streams)}", open_timeout=TIMEOUT)


async def raw_until(ws, predicate, timeout: float = TIMEOUT) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if "data" in frame and predicate(frame["data"]):
                return frame["data"]


def assert_uncrossed(book: dict) -> None:
    bids = [Decimal(p) for p, _ in book["bids"]]
    asks = [Decimal(p) for p, _ in book["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks), "levels must be best first"
    assert not bids or not asks or bids[0] < asks[0], f"crossed book reached a client: {bids[0]} >= {asks[0]}"


async def test_ticker_values_equal_what_the_exchange_sent(worker, live_gateway, exchange):
    raw = await exchange_feed(exchange, "btcusdt@ticker")
    async with await market(live_gateway) as client:
        await client.subscribe({"type": "subscribe_ticker", "symbols": ["BTCUSDT"]})
        sent = await raw_until(raw, lambda d: d.get("e") == "24hrTicker")
        got = await client.recv_until(lambda m: m["type"] == "ticker" and m["timestamp"] == iso_from_millis(sent["E"]))
    await raw.close()
    assert (got["symbol"], got["price"], got["price_change"], got["price_change_percent"]) == (
        sent["s"],
        sent["c"],
        sent["p"],
        sent["P"],
    )
    assert (got["high_price"], got["low_price"], got["volume"]) == (sent["h"], sent["l"], sent["v"])


async def test_trade_values_equal_what_the_exchange_printed(worker, live_gateway, exchange):
    async with await market(live_gateway) as client:
        await client.subscribe({"type": "subscribe_trades", "symbols": ["ETHUSDT"]})
        printed = await exchange.control(
            "trade", symbol="ETHUSDT", price="3123.45000000", quantity="0.12300000", buyer_maker=True
        )
        sell = await client.recv_until(lambda m: m["type"] == "trade" and m["price"] == "3123.45000000")
        await exchange.control("trade", symbol="ETHUSDT", price="3123.46000000", quantity="0.5", buyer_maker=False)
        buy = await client.recv_until(lambda m: m["type"] == "trade" and m["price"] == "3123.46000000")
    assert sell["quantity"] == "0.12300000" and sell["side"] == "sell" and sell["symbol"] == "ETHUSDT"
    assert buy["side"] == "buy"
    assert printed  # the exchange acknowledged the print


async def test_order_book_equals_the_exchanges_book_once_the_feed_is_still(worker, live_gateway, exchange):
    async with await market(live_gateway) as client:
        await client.subscribe({"type": "subscribe_orderbook", "symbols": ["BTCUSDT"]})
        for _ in range(5):
            book = await client.recv_until(lambda m: m["type"] == "orderbook")
            assert_uncrossed(book)
        await exchange.control("pause")
        try:
            _, depth = await ahttp_json("GET", f"{exchange.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=20")
            # With the feed still, the worker's book catches up to exactly the exchange's update id.
            while book["last_update_id"] < depth["lastUpdateId"]:
                book = await client.recv_until(lambda m: m["type"] == "orderbook", timeout=SLOW)
        finally:
            await exchange.control("resume")
    assert book["last_update_id"] == depth["lastUpdateId"]
    assert (book["bids"], book["asks"]) == (depth["bids"][:20], depth["asks"][:20])


async def test_a_new_subscriber_gets_the_current_book_at_once(worker, live_gateway, exchange):
    async with await market(live_gateway) as first:
        await first.subscribe({"type": "subscribe_orderbook", "symbols": ["ADAUSDT"]})
        await first.recv_until(lambda m: m["type"] == "orderbook")  # the worker has published a book
    await exchange.control("pause")  # from here no update flows: whatever comes is the snapshot
    try:
        async with await market(live_gateway) as client:
            await client.send({"type": "subscribe_orderbook", "symbols": ["ADAUSDT"]})
            ack = await client.recv()
            snapshot = await client.recv()
    finally:
        await exchange.control("resume")
    assert ack["type"] == "subscribed" and snapshot["type"] == "orderbook" and snapshot["symbol"] == "ADAUSDT"
    assert_uncrossed(snapshot)


async def test_a_gap_in_the_depth_stream_resynchronises_and_never_publishes_a_bad_book(worker, live_gateway, exchange):
    async with await market(live_gateway) as client:
        await client.subscribe({"type": "subscribe_orderbook", "symbols": ["BTCUSDT"]})
        await client.recv_until(lambda m: m["type"] == "orderbook")
        await exchange.control("gap", symbol="BTCUSDT")
        for _ in range(30):  # ~3 s of books across the gap and the resync
            assert_uncrossed(await client.recv_until(lambda m: m["type"] == "orderbook", timeout=SLOW))


async def test_tickers_resume_after_the_exchange_drops_every_connection(worker, live_gateway, exchange):
    async with await market(live_gateway) as client:
        await client.subscribe({"type": "subscribe_ticker", "symbols": ["BTCUSDT"]})
        await client.recv_until(lambda m: m["type"] == "ticker")
        dropped = await exchange.control("drop")
        after = await _ticker_after_now(client)
    assert dropped["dropped"] >= 1 and after["symbol"] == "BTCUSDT"


async def test_garbage_frames_are_skipped_and_the_feed_goes_on(worker, live_gateway, exchange):
    async with await market(live_gateway) as client:
        await client.subscribe({"type": "subscribe_ticker", "symbols": ["ETHUSDT"]})
        await client.recv_until(lambda m: m["type"] == "ticker")
        sent = await exchange.control("garbage")
        after = await _ticker_after_now(client)
    assert sent["sent_to"] >= 1 and after["symbol"] == "ETHUSDT"
    assert worker.alive()


async def test_server_shutdown_notice_makes_the_worker_reconnect_and_the_feed_goes_on(worker, live_gateway, exchange):
    async with await market(live_gateway) as client:
        await client.subscribe({"type": "subscribe_ticker", "symbols": ["BTCUSDT"]})
        await client.recv_until(lambda m: m["type"] == "ticker")
        await exchange.control("shutdown")
        after = await _ticker_after_now(client)
    assert after["symbol"] == "BTCUSDT"


async def test_status_reports_simulated_market_data(worker, live_gateway):
    # The worker writes its record every few seconds; after the reconnect tests it may say
    # "reconnecting" for one of them.
    from tests.integration import harness

    connected = lambda: live_gateway.status()["market_data"].get("connected")  # noqa: E731
    await asyncio.to_thread(harness.wait_until, connected, worker, "the worker never reported connected", SLOW)
    status = await asyncio.to_thread(live_gateway.status)
    assert status["market_data"]["simulated"] is True and status["market_data"]["source"] == "simulator"


async def _ticker_after_now(client: Client) -> dict:
    """The first ticker stamped after this moment (exchange event time), across reconnects."""
    from realtime.protocol import now_iso

    since = now_iso()
    return await client.recv_until(lambda m: m["type"] == "ticker" and m["timestamp"] > since, timeout=SLOW)


@pytest.fixture
def private_redis(stack):
    """A Redis of this test's own, so it can be restarted without disturbing the other tests."""
    from tests.integration import harness

    port = harness.free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    state = {"service": stack.spawn("private-redis", args)}

    def restart():
        state["service"].stop()
        state["service"] = stack.spawn("private-redis", args)
        harness.wait_until(lambda: harness.redis_answers(port=port), state["service"], "redis did not restart")

    harness.wait_until(lambda: harness.redis_answers(port=port), state["service"], "redis did not start")
    yield f"redis://127.0.0.1:{port}/0", restart
    state["service"].stop()


async def test_the_system_recovers_on_its_own_when_redis_restarts(stack, private_redis):
    from tests.integration.conftest import start_exchange, start_worker

    url, restart = private_redis
    # A system of its own (database included): its worker must not fill the other tests' orders.
    database = f"sqlite:///{stack.workdir / 'redis-restart.sqlite3'}"
    stack.manage("migrate", "--no-input", DATABASE_URL=database)
    exchange = start_exchange(stack)
    gateway = stack.daphne(None, REDIS_URL=url, DATABASE_URL=database)
    worker = start_worker(stack, exchange, REDIS_URL=url, DATABASE_URL=database)
    try:
        async with await market(gateway) as client:
            await client.subscribe({"type": "subscribe_ticker", "symbols": ["BTCUSDT"]})
            await client.recv_until(lambda m: m["type"] == "ticker", timeout=SLOW)
            await asyncio.to_thread(restart)
            # Either the same connection keeps getting tickers, or (if daphne had to drop it) a new one does.
            try:
                after = await _ticker_after_now(client)
            except (TimeoutError, websockets.ConnectionClosed):
                after = None
        if after is None:
            async with await market(gateway) as client:
                await client.subscribe({"type": "subscribe_ticker", "symbols": ["BTCUSDT"]})
                after = await _ticker_after_now(client)
        assert after["symbol"] == "BTCUSDT"
    finally:
        for service in (worker, gateway.service, exchange.service):
            service.stop()
