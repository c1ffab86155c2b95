"""The local exchange speaks Binance's stream and REST protocol well enough for the real procedure to work."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import random
import urllib.request
from decimal import Decimal

import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode

from marketdata import normalize
from marketdata.exceptions import NormalizeError
from marketdata.exchange_model import SimulatedMarket
from marketdata.exchange_server import GARBAGE_FRAMES, SimulatorConfig, next_step_at
from marketdata.normalize import MarketMessage, ServerShutdown
from marketdata.orderbook import OrderBook, Outcome
from tests.marketdata.exchange import (
    connect,
    exchange_process,
    http,
    payload_of,
    recv_json,
    recv_until,
    running_simulator,
)
from tests.support import TIMEOUT

TICKER_FIELDS = {"e", "E", "s", "p", "P", "w", "x", "c", "Q", "b", "B", "a", "A", "o", "h", "l", "v", "q"}
TICKER_FIELDS |= {"O", "C", "F", "L", "n"}
TRADE_FIELDS = {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
DEPTH_FIELDS = {"e", "E", "s", "U", "u", "b", "a"}
QUIET = 0.3  # how long "nothing arrives" is watched for


def test_market_steps_keep_a_fixed_cadence_whatever_a_step_takes():
    # Steps due at 0.1, 0.2, ...: a step that took 30 ms does not push the next one to 0.23.
    assert next_step_at(0.1, 0.1, now=0.13) == pytest.approx(0.2)
    assert next_step_at(0.2, 0.1, now=0.2) == pytest.approx(0.3)


def test_a_late_market_step_restarts_the_cadence_instead_of_a_burst_of_steps():
    # The machine stalled for half a second: the next step is due now, not the five it missed.
    assert next_step_at(0.1, 0.1, now=0.65) == 0.65


@pytest.fixture
async def simulator():
    async with running_simulator() as simulator:
        yield simulator


def is_reply(frame: dict) -> bool:
    return "id" in frame and ("result" in frame or "error" in frame)


async def request(ws, message: dict) -> dict:
    await ws.send(orjson.dumps(message).decode())
    return await recv_until(ws, is_reply)


# --- streams --------------------------------------------------------------------------------------


async def test_a_combined_stream_sends_ticker_trade_and_depth_with_binances_field_names(simulator):
    streams = "btcusdt@ticker/btcusdt@trade/btcusdt@depth@100ms"
    async with await connect(f"{simulator.ws_url}/stream?streams={streams}") as ws:
        seen: dict[str, dict] = {}
        async with asyncio.timeout(TIMEOUT):
            while len(seen) < 3:
                frame = await recv_json(ws)
                seen[frame["stream"]] = frame["data"]

    assert set(seen["btcusdt@ticker"]) == TICKER_FIELDS
    assert set(seen["btcusdt@trade"]) == TRADE_FIELDS
    assert set(seen["btcusdt@depth@100ms"]) == DEPTH_FIELDS
    assert isinstance(normalize.parse_frame(orjson.dumps(seen["btcusdt@ticker"])), MarketMessage)


async def test_every_payload_the_simulator_sends_is_accepted_by_the_normaliser(simulator):
    streams = "/".join(f"{s}@{k}" for s in ("btcusdt", "adausdt") for k in ("ticker", "trade", "depth@100ms", "depth"))
    async with await connect(f"{simulator.ws_url}/stream?streams={streams}") as ws:
        frames = [await ws.recv() for _ in range(200)]

    assert all(normalize.parse_frame(frame) for frame in frames)


async def test_a_raw_connection_subscribes_lists_and_unsubscribes(simulator):
    async with await connect(f"{simulator.ws_url}/ws") as ws:
        assert await request(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}) == {
            "result": None,
            "id": 1,
        }
        trade = await recv_until(ws, lambda f: f.get("e") == "trade")
        listed = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
        unsubscribed = await request(ws, {"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 312})
        after = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": "four"})

    assert trade["s"] == "BTCUSDT"  # a raw payload, not wrapped
    assert listed == {"result": ["btcusdt@trade"], "id": 3}
    assert unsubscribed == {"result": None, "id": 312}
    assert after == {"result": [], "id": "four"}


async def test_a_stream_named_in_a_raw_path_is_subscribed(simulator):
    async with await connect(f"{simulator.ws_url}/ws/ethusdt@depth@100ms") as ws:
        frame = await recv_json(ws)

    assert frame["e"] == "depthUpdate"
    assert frame["s"] == "ETHUSDT"


async def test_the_combined_property_switches_the_payload_shape(simulator):
    async with await connect(f"{simulator.ws_url}/ws/btcusdt@depth@100ms") as ws:
        assert (await request(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 2}))["result"] is False
        await request(ws, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 5})
        frame = await recv_until(ws, lambda f: "stream" in f)

    assert frame["stream"] == "btcusdt@depth@100ms"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", 3),
        ({"method": "SUBSCRIBE", "params": ["BTCUSDT@trade"], "id": 9}, 2),
        ({"method": "SUBSCRIBE", "params": "btcusdt@trade", "id": 9}, 2),
        ({"method": "PUBLISH", "id": 9}, 2),
        ({"params": [], "id": 9}, 2),
        ({"method": "LIST_SUBSCRIPTIONS", "id": True}, 2),
        ({"method": "LIST_SUBSCRIPTIONS", "id": -1}, 2),
        ({"method": "LIST_SUBSCRIPTIONS", "id": 1.5}, 2),
        ({"method": "LIST_SUBSCRIPTIONS", "id": "x" * 37}, 2),
        ({"method": "LIST_SUBSCRIPTIONS", "id": "no_underscores"}, 2),
        ('{"method": "LIST_SUBSCRIPTIONS", "id": 18446744073709551616}', 2),
        ({"method": "GET_PROPERTY", "params": ["colour"], "id": 9}, 0),
        ({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 9}, 1),
    ],
    ids=[
        "bad-json",
        "uppercase-stream",
        "params-not-a-list",
        "unknown-method",
        "no-method",
        "bad-id",
        "negative-id",
        "float-id",
        "long-id",
        "underscore-id",
        "huge-id",
        "bad-prop",
        "bad-val",
    ],
)
async def test_a_bad_request_gets_binances_error_reply_and_the_connection_stays_open(simulator, message, code):
    async with await connect(f"{simulator.ws_url}/ws") as ws:
        await ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())
        reply = await recv_until(ws, lambda f: "error" in f)
        still_open = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 10})

    assert set(reply) == {"error", "id"}
    assert reply["error"]["code"] == code
    assert reply["error"]["msg"]
    assert still_open == {"result": [], "id": 10}


async def test_an_error_reply_names_the_request_id(simulator):
    async with await connect(f"{simulator.ws_url}/ws") as ws:
        reply = await request(ws, {"method": "SUBSCRIBE", "params": ["nonsense"], "id": 77})

    assert reply["id"] == 77


async def test_more_than_five_messages_a_second_get_the_connection_cut(simulator):
    async with await connect(f"{simulator.ws_url}/ws") as ws:
        for number in range(7):
            await ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": number}).decode())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    await ws.recv()

    assert closed.value.rcvd.code == 1008
    assert simulator.rate_limit_disconnects == 1


async def test_a_connection_cannot_listen_to_more_streams_than_the_limit():
    async with (
        running_simulator(max_streams_per_connection=2) as simulator,
        await connect(f"{simulator.ws_url}/ws") as ws,
    ):
        params = ["btcusdt@trade", "btcusdt@ticker", "ethusdt@trade"]
        reply = await request(ws, {"method": "SUBSCRIBE", "params": params, "id": 1})

    assert reply["error"]["code"] == 2


@pytest.mark.parametrize(
    "request_id",
    [0, 18446744073709551615, "6f8d37e9-63ef-4d65-b8da-80cf2754b4b8", "A" * 36, "four", None],
    ids=["zero", "max-unsigned", "uuid", "36-chars", "word", "null"],
)
async def test_request_ids_binance_accepts_are_echoed(simulator, request_id):
    async with await connect(f"{simulator.ws_url}/ws") as ws:
        reply = await request(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": request_id})

    assert reply == {"result": None, "id": request_id}


async def test_an_error_reply_for_a_bad_id_names_no_id(simulator):
    async with await connect(f"{simulator.ws_url}/ws") as ws:
        reply = await request(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": "bad id!"})

    assert reply == {"error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}, "id": None}


async def test_a_raw_path_naming_no_stream_opens_and_takes_subscriptions_as_ccxt_pro_does(simulator):
    async with await connect(f"{simulator.ws_url}/ws/0") as ws:
        listed = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})
        await request(ws, {"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 2})
        trade = await recv_until(ws, lambda f: f.get("e") == "trade")

    assert listed == {"result": [], "id": 1}
    assert trade["s"] == "ETHUSDT"


@pytest.mark.parametrize("url", ["/ws/BTCUSDT@trade", "/stream?streams=BTCUSDT@trade/ethusdt@trade"])
async def test_an_upper_case_stream_in_the_url_opens_the_connection_and_delivers_nothing(simulator, url):
    async with await connect(f"{simulator.ws_url}{url}") as ws:
        await request(ws, {"method": "SUBSCRIBE", "params": ["adausdt@trade"], "id": 1})
        symbols = {payload_of(await recv_until(ws, lambda f: "id" not in f))["s"] for _ in range(30)}

    assert "BTCUSDT" not in symbols
    assert "ADAUSDT" in symbols  # the same connection does deliver


async def test_a_url_naming_too_many_streams_is_refused_before_the_upgrade():
    async with running_simulator(max_streams_per_connection=2) as simulator:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await connect(f"{simulator.ws_url}/stream?streams=btcusdt@trade/ethusdt@trade/adausdt@trade")

    assert refused.value.response.status_code == 400


async def test_ping_frames_count_toward_the_message_limit(simulator):
    async with await connect(f"{simulator.ws_url}/ws") as ws:
        for _ in range(7):
            await ws.ping()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    await ws.recv()

    assert closed.value.rcvd.code == 1008
    assert simulator.rate_limit_disconnects == 1


async def test_a_few_ping_frames_are_allowed(simulator):
    async with await connect(f"{simulator.ws_url}/ws/btcusdt@depth@100ms") as ws:
        for _ in range(3):
            await asyncio.wait_for(await ws.ping(), TIMEOUT)
        frame = await recv_json(ws)

    assert frame["e"] == "depthUpdate"
    assert simulator.rate_limit_disconnects == 0


def test_binance_gives_a_minute_for_the_pong():
    assert SimulatorConfig().ping_interval == 20.0
    assert SimulatorConfig().ping_timeout == 60.0


async def test_a_client_that_never_answers_pings_is_disconnected():
    # A bare socket: client libraries answer pings by themselves, this one never does.
    async with running_simulator(ping_interval=0.05, ping_timeout=0.2, max_messages_per_second=0) as simulator:
        reader, writer = await asyncio.open_connection(simulator.host, simulator.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws/btcusdt@trade HTTP/1.1\r\nHost: {simulator.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        async with asyncio.timeout(TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
            received = await reader.read()  # until the server closes the connection
        writer.close()

    assert head.startswith(b"HTTP/1.1 101")
    assert b"\x88" in received and (1011).to_bytes(2, "big") in received  # a close frame: keepalive ping timeout
    assert simulator.rate_limit_disconnects == 0


@pytest.mark.parametrize("combined", [False, True])
async def test_time_unit_microsecond_sends_every_time_in_microseconds(simulator, combined):
    path = "stream?streams=btcusdt@trade&" if combined else "ws/btcusdt@trade?"
    async with await connect(f"{simulator.ws_url}/{path}timeUnit=MICROSECOND") as ws:
        sent = simulator.print_trade("BTCUSDT", "50010.00", "0.1")
        trade = payload_of(await recv_until(ws, lambda f: payload_of(f)["t"] == sent["t"]))

    assert (trade["E"], trade["T"]) == (sent["E"] * 1000, sent["T"] * 1000)


async def test_an_unknown_time_unit_is_refused(simulator):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(f"{simulator.ws_url}/ws/btcusdt@trade?timeUnit=NANOSECOND")

    assert refused.value.response.status_code == 400


class PingSpy(ClientConnection):
    """A client connection that notes the server's pings (websockets answers them by itself)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pinged = asyncio.Event()

    def process_event(self, event):
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pinged.set()
        super().process_event(event)


async def test_the_server_pings_its_clients():
    async with running_simulator(ping_interval=0.05) as simulator:
        url = f"{simulator.ws_url}/ws"
        async with websockets.connect(url, create_connection=PingSpy, ping_interval=None) as ws:
            await asyncio.wait_for(ws.pinged.wait(), TIMEOUT)


# --- REST -----------------------------------------------------------------------------------------


async def test_rest_ping_and_time_answer(simulator):
    assert await http("GET", f"{simulator.rest_url}/api/v3/ping") == (200, {})
    status, body = await http("GET", f"{simulator.rest_url}/api/v3/time")
    assert status == 200
    assert isinstance(body["serverTime"], int)


async def test_rest_depth_returns_a_snapshot_of_the_asked_size(simulator):
    status, body = await http("GET", f"{simulator.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=5")

    snapshot = normalize.depth_snapshot(body)
    assert status == 200
    assert len(snapshot.bids) == len(snapshot.asks) == 5
    assert max(Decimal(p) for p, _q in snapshot.bids) < min(Decimal(p) for p, _q in snapshot.asks)


@pytest.mark.parametrize(
    ("query", "code"),
    [("", -1102), ("?symbol=NOPEUSDT", -1121), ("?symbol=BTCUSDT&limit=0", -1100), ("?symbol=BTCUSDT&limit=x", -1100)],
)
async def test_rest_depth_refuses_bad_parameters_with_binance_codes(simulator, query, code):
    status, body = await http("GET", f"{simulator.rest_url}/api/v3/depth{query}")

    assert (status, body["code"]) == (400, code)


async def test_exchange_info_lists_trading_symbols_with_their_filters(simulator):
    status, body = await http("GET", f"{simulator.rest_url}/api/v3/exchangeInfo")

    assert status == 200
    symbols = {s["symbol"]: s for s in body["symbols"]}
    assert set(symbols) == {"BTCUSDT", "ETHUSDT", "ADAUSDT"}
    btc = symbols["BTCUSDT"]
    assert (btc["status"], btc["baseAsset"], btc["quoteAsset"]) == ("TRADING", "BTC", "USDT")
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"


async def test_exchange_info_can_be_asked_for_one_symbol(simulator):
    _status, body = await http("GET", f"{simulator.rest_url}/api/v3/exchangeInfo?symbol=ETHUSDT")

    assert [s["symbol"] for s in body["symbols"]] == ["ETHUSDT"]


async def test_an_unknown_path_is_not_found(simulator):
    status, _body = await http("GET", f"{simulator.rest_url}/api/v3/nothing")

    assert status == 404


async def test_the_rest_snapshot_and_the_diffs_sync_a_local_book_exactly(simulator):
    book = OrderBook("BTCUSDT")
    depth_url = f"{simulator.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=1000"
    async with await connect(f"{simulator.ws_url}/ws/btcusdt@depth@100ms") as ws:

        async def next_diff() -> Outcome:
            return book.on_diff(normalize.parse_frame(await asyncio.wait_for(ws.recv(), TIMEOUT)))

        assert await next_diff() is Outcome.BUFFERED
        assert book.on_snapshot(normalize.depth_snapshot((await http("GET", depth_url))[1])) is Outcome.APPLIED
        applied = 0
        while applied < 30:  # the book lives through a few dozen events; stale ones are skipped
            outcome = await next_diff()
            assert outcome is not Outcome.RESYNC
            applied += outcome is Outcome.APPLIED
        simulator.pause()
        final = normalize.depth_snapshot((await http("GET", depth_url))[1])
        while book.last_update_id < final.last_update_id:  # events sent before the pause, still in flight
            assert await next_diff() is Outcome.APPLIED

    assert book.top(1000) == ([tuple(level) for level in final.bids], [tuple(level) for level in final.asks])


# --- the simulated market ---------------------------------------------------------------------------


def test_update_ids_are_consecutive_and_the_book_never_crosses():
    market = SimulatedMarket("BTCUSDT", random.Random(3), levels=10)
    previous = market.update_id
    for _ in range(2000):
        market.step_book()
        event = market.fast.flush("BTCUSDT", 1)
        assert event["U"] == previous + 1
        assert event["u"] >= event["U"]
        previous = event["u"]
        assert max(market.bids) < min(market.asks)
        assert len(market.bids) == len(market.asks) == 10


def test_the_slow_depth_stream_merges_the_fast_events():
    market = SimulatedMarket("ETHUSDT", random.Random(4), levels=10)
    fast = []
    for _ in range(10):
        market.step_book()
        fast.append(market.fast.flush("ETHUSDT", 1))
    slow = market.slow.flush("ETHUSDT", 1)

    assert (slow["U"], slow["u"]) == (fast[0]["U"], fast[-1]["u"])


def test_a_simulated_symbol_without_a_profile_still_trades():
    market = SimulatedMarket("DOGEUSDT", random.Random(5))

    trade = market.random_trade(1)

    assert normalize.trade(trade)["symbol"] == "DOGEUSDT"
    assert market.exchange_info()["baseAsset"] == "DOGE"


# --- test control -----------------------------------------------------------------------------------


async def test_a_control_trade_is_printed_at_once_and_moves_the_ticker(simulator):
    async with await connect(f"{simulator.ws_url}/stream?streams=ethusdt@trade/ethusdt@ticker") as ws:
        body = {"symbol": "ETHUSDT", "price": "3210.50", "quantity": "1.25", "buyer_maker": True}
        status, answer = await http("POST", f"{simulator.rest_url}/_sim/trade", body)
        trade = await recv_until(
            ws, lambda f: f["stream"] == "ethusdt@trade" and f["data"]["t"] == answer["trade"]["t"]
        )
        ticker = await recv_until(ws, lambda f: f["stream"] == "ethusdt@ticker")

    assert status == 200
    assert trade["data"] == answer["trade"]
    assert (trade["data"]["p"], trade["data"]["q"], trade["data"]["m"]) == ("3210.50", "1.25", True)
    assert ticker["data"]["c"] == "3210.50"


async def test_a_control_trade_takes_its_parameters_from_the_query_string_too(simulator):
    status, answer = await http("POST", f"{simulator.rest_url}/_sim/trade?symbol=adausdt&price=0.61&quantity=100")

    assert status == 200
    assert (answer["trade"]["s"], answer["trade"]["p"], answer["trade"]["m"]) == ("ADAUSDT", "0.61", False)


@pytest.mark.parametrize(
    "body",
    [{"symbol": "NOPE", "price": "1"}, {"symbol": "BTCUSDT", "price": "-1"}, {"symbol": "BTCUSDT", "price": "abc"}],
)
async def test_a_bad_control_trade_is_refused(simulator, body):
    status, _answer = await http("POST", f"{simulator.rest_url}/_sim/trade", body)

    assert status == 400


async def test_drop_cuts_every_connection_without_a_close_frame(simulator):
    async with await connect(f"{simulator.ws_url}/ws/btcusdt@trade") as ws:
        status, answer = await http("POST", f"{simulator.rest_url}/_sim/drop")
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    await ws.recv()

    assert (status, answer) == (200, {"dropped": 1})
    assert closed.value.rcvd is None


async def test_garbage_sends_malformed_frames_the_normaliser_refuses(simulator):
    async with await connect(f"{simulator.ws_url}/ws") as ws:
        await simulator.wait_until(lambda s: len(s.clients) == 1, TIMEOUT)
        await http("POST", f"{simulator.rest_url}/_sim/garbage")
        frames = [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in GARBAGE_FRAMES]

    for frame in frames:
        with pytest.raises(NormalizeError):
            normalize.parse_frame(frame)


async def test_shutdown_sends_the_streams_server_shutdown_event(simulator):
    async with await connect(f"{simulator.ws_url}/ws") as raw, await connect(f"{simulator.ws_url}/stream") as combined:
        await simulator.wait_until(lambda s: len(s.clients) == 2, TIMEOUT)
        await http("POST", f"{simulator.rest_url}/_sim/shutdown")
        frames = [await asyncio.wait_for(ws.recv(), TIMEOUT) for ws in (raw, combined)]

    raw_event, combined_event = (orjson.loads(f) for f in frames)
    assert set(raw_event) == {"e", "E"} and raw_event["e"] == "serverShutdown"
    assert combined_event["stream"] == "!serverShutdown" and combined_event["data"]["e"] == "serverShutdown"
    assert all(isinstance(normalize.parse_frame(frame), ServerShutdown) for frame in frames)


async def test_pause_stops_the_feed_and_resume_restarts_it(simulator):
    async with await connect(f"{simulator.ws_url}/ws/btcusdt@depth@100ms") as ws:
        await recv_json(ws)
        await http("POST", f"{simulator.rest_url}/_sim/pause")
        while True:  # frames sent before the pause drain, then nothing comes
            try:
                await asyncio.wait_for(ws.recv(), QUIET)
            except TimeoutError:
                break
        await http("POST", f"{simulator.rest_url}/_sim/resume")
        resumed = await recv_json(ws)

    assert resumed["e"] == "depthUpdate"


async def test_a_gap_leaves_out_update_ids_on_the_fast_depth_stream(simulator):
    async with await connect(f"{simulator.ws_url}/ws/btcusdt@depth@100ms") as ws:
        before = await recv_json(ws)
        await http("POST", f"{simulator.rest_url}/_sim/gap", {"symbol": "BTCUSDT"})
        events = [before] + [await recv_json(ws) for _ in range(5)]

    gaps = [b["U"] - a["u"] for a, b in itertools.pairwise(events) if b["U"] != a["u"] + 1]
    assert len(gaps) == 1


async def test_state_lists_connections_and_their_subscriptions(simulator):
    async with await connect(f"{simulator.ws_url}/stream?streams=btcusdt@trade/ethusdt@ticker"):
        await simulator.wait_until(lambda s: len(s.clients) == 1, TIMEOUT)
        status, state = await http("GET", f"{simulator.rest_url}/_sim/state")

    assert status == 200
    (connection,) = state["connections"]
    assert connection["combined"] is True
    assert connection["subscriptions"] == ["btcusdt@trade", "ethusdt@ticker"]
    assert state["paused"] is False
    assert set(state["markets"]) == {"BTCUSDT", "ETHUSDT", "ADAUSDT"}


async def test_payloads_sent_are_kept_for_comparison(simulator):
    answer = simulator.print_trade("BTCUSDT", "50001.00", "0.5")

    assert simulator.history["btcusdt@trade"][-1] == answer
    assert payload_of({"stream": "btcusdt@trade", "data": answer}) == answer


# --- the market data streams every client library asks for ------------------------------------------

STREAM_FIELDS = {
    "btcusdt@miniTicker": {"e", "E", "s", "c", "o", "h", "l", "v", "q"},
    "btcusdt@aggTrade": {"e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"},
    "btcusdt@bookTicker": {"u", "s", "b", "B", "a", "A"},
    "btcusdt@kline_1m": {"e", "E", "s", "k"},
    "btcusdt@depth5": {"lastUpdateId", "bids", "asks"},
    "btcusdt@depth10@100ms": {"lastUpdateId", "bids", "asks"},
    "btcusdt@depth20": {"lastUpdateId", "bids", "asks"},
}
KLINE_FIELDS = {"t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"}


async def test_every_stream_kind_is_served_with_binances_field_names(simulator):
    streams = "/".join([*STREAM_FIELDS, "!ticker@arr", "!miniTicker@arr"])
    async with await connect(f"{simulator.ws_url}/stream?streams={streams}") as ws:
        seen: dict[str, dict | list] = {}
        async with asyncio.timeout(TIMEOUT):
            while len(seen) < len(STREAM_FIELDS) + 2:
                frame = await recv_json(ws)
                seen[frame["stream"]] = frame["data"]

    for stream, fields in STREAM_FIELDS.items():
        assert set(seen[stream]) == fields, stream
    assert set(seen["btcusdt@kline_1m"]["k"]) == KLINE_FIELDS
    assert seen["btcusdt@kline_1m"]["k"]["i"] == "1m"
    assert len(seen["btcusdt@depth5"]["bids"]) == len(seen["btcusdt@depth5"]["asks"]) == 5
    assert len(seen["btcusdt@depth20"]["bids"]) == 20
    assert {t["s"] for t in seen["!ticker@arr"]} == {"BTCUSDT", "ETHUSDT", "ADAUSDT"}
    assert {t["e"] for t in seen["!ticker@arr"]} == {"24hrTicker"}
    assert {t["e"] for t in seen["!miniTicker@arr"]} == {"24hrMiniTicker"}


async def test_an_agg_trade_carries_the_trade_it_aggregates(simulator):
    async with await connect(f"{simulator.ws_url}/ws/ethusdt@aggTrade") as ws:
        await simulator.wait_until(lambda s: len(s.clients) == 1, TIMEOUT)
        sent = simulator.print_trade("ETHUSDT", "3001.50", "0.25", buyer_maker=True)
        agg = await recv_until(ws, lambda f: f["f"] == sent["t"])

    assert (agg["e"], agg["p"], agg["q"], agg["l"], agg["m"], agg["T"]) == (
        "aggTrade",
        "3001.50",
        "0.25",
        sent["t"],
        True,
        sent["T"],
    )


async def test_a_partial_book_stream_equals_the_top_of_the_rest_snapshot(simulator):
    async with await connect(f"{simulator.ws_url}/ws/btcusdt@depth5@100ms") as ws:
        first = await recv_json(ws)
        simulator.pause()
        snapshot = (await http("GET", f"{simulator.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=5"))[1]
        last_id = snapshot["lastUpdateId"]
        # The partial book of the last step before the pause carries the snapshot's id.
        book = (
            first if first["lastUpdateId"] == last_id else await recv_until(ws, lambda f: f["lastUpdateId"] == last_id)
        )
        simulator.resume()

    assert book == snapshot


# --- REST market data -----------------------------------------------------------------------------------


async def rest(simulator, path: str) -> tuple[int, dict | list]:
    return await http("GET", f"{simulator.rest_url}{path}")


async def test_rest_market_data_endpoints_answer_with_binances_fields(simulator):
    simulator.pause()  # no random trade after the ones printed here
    for _ in range(3):
        simulator.print_trade("BTCUSDT", "50000.00", "0.5")
    answers = {
        path: await rest(simulator, path)
        for path in (
            "/api/v3/ticker/24hr?symbol=BTCUSDT",
            "/api/v3/ticker/24hr?symbol=BTCUSDT&type=MINI",
            "/api/v3/trades?symbol=BTCUSDT&limit=2",
            "/api/v3/aggTrades?symbol=BTCUSDT&limit=2",
            "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=2",
            "/api/v3/avgPrice?symbol=BTCUSDT",
            "/api/v3/ticker/price?symbol=BTCUSDT",
            "/api/v3/ticker/bookTicker?symbol=BTCUSDT",
        )
    }

    assert all(status == 200 for status, _body in answers.values())
    ticker = answers["/api/v3/ticker/24hr?symbol=BTCUSDT"][1]
    assert set(ticker) == {
        "symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "prevClosePrice", "lastPrice", "lastQty",
        "bidPrice", "bidQty", "askPrice", "askQty", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume",
        "openTime", "closeTime", "firstId", "lastId", "count",
    }  # fmt: skip
    mini = answers["/api/v3/ticker/24hr?symbol=BTCUSDT&type=MINI"][1]
    assert set(mini) == {
        "symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume", "openTime", "closeTime",
        "firstId", "lastId", "count",
    }  # fmt: skip
    trades = answers["/api/v3/trades?symbol=BTCUSDT&limit=2"][1]
    assert [set(t) for t in trades] == [{"id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"}] * 2
    aggs = answers["/api/v3/aggTrades?symbol=BTCUSDT&limit=2"][1]
    assert [set(a) for a in aggs] == [{"a", "p", "q", "f", "l", "T", "m", "M"}] * 2
    assert [a["f"] for a in aggs] == [t["id"] for t in trades]
    klines = answers["/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=2"][1]
    assert klines and all(len(k) == 12 and k[6] == k[0] + 59_999 for k in klines)
    assert set(answers["/api/v3/avgPrice?symbol=BTCUSDT"][1]) == {"mins", "price", "closeTime"}
    assert answers["/api/v3/ticker/price?symbol=BTCUSDT"][1] == {"symbol": "BTCUSDT", "price": "50000.00"}
    assert set(answers["/api/v3/ticker/bookTicker?symbol=BTCUSDT"][1]) == {
        "symbol", "bidPrice", "bidQty", "askPrice", "askQty"
    }  # fmt: skip


async def test_klines_sum_to_the_24h_ticker(simulator):
    for n in range(20):
        simulator.print_trade("ETHUSDT", f"30{n:02d}.00", "0.5", buyer_maker=n % 2 == 0)
    simulator.pause()
    _status, ticker = await rest(simulator, "/api/v3/ticker/24hr?symbol=ETHUSDT")
    _status, klines = await rest(simulator, "/api/v3/klines?symbol=ETHUSDT&interval=1m&limit=1000")
    _status, hourly = await rest(simulator, "/api/v3/klines?symbol=ETHUSDT&interval=1h")

    assert sum(Decimal(k[5]) for k in klines) == Decimal(ticker["volume"])
    assert sum(Decimal(k[7]) for k in klines) == Decimal(ticker["quoteVolume"])
    assert sum(k[8] for k in klines) == ticker["count"] == ticker["lastId"] - ticker["firstId"] + 1
    assert max(Decimal(k[2]) for k in klines) == Decimal(ticker["highPrice"])
    assert min(Decimal(k[3]) for k in klines) == Decimal(ticker["lowPrice"])
    assert (klines[0][1], Decimal(klines[-1][4])) == (ticker["openPrice"], Decimal(ticker["lastPrice"]))
    assert Decimal(hourly[-1][5]) == Decimal(ticker["volume"])  # the session is younger than an hour


async def test_tickers_without_a_symbol_list_every_market(simulator):
    _status, prices = await rest(simulator, "/api/v3/ticker/price")
    _status, two = await rest(simulator, '/api/v3/ticker/bookTicker?symbols=["BTCUSDT","ADAUSDT"]')

    assert {p["symbol"] for p in prices} == {"BTCUSDT", "ETHUSDT", "ADAUSDT"}
    assert [b["symbol"] for b in two] == ["BTCUSDT", "ADAUSDT"]


async def test_the_time_unit_header_gives_rest_times_in_microseconds(simulator):
    simulator.print_trade("BTCUSDT", "50000.00", "0.5")
    simulator.pause()  # the same trades and candles for both answers
    micro = {"X-MBX-TIME-UNIT": "MICROSECOND"}
    paths = ["/api/v3/trades?symbol=BTCUSDT&limit=1", "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1"]
    milli_trades, milli_klines = [(await http("GET", f"{simulator.rest_url}{p}"))[1] for p in paths]
    micro_trades, micro_klines = [(await http("GET", f"{simulator.rest_url}{p}", headers=micro))[1] for p in paths]
    _status, time_body = await http("GET", f"{simulator.rest_url}/api/v3/time", headers=micro)
    refused, body = await http("GET", f"{simulator.rest_url}/api/v3/time", headers={"X-MBX-TIME-UNIT": "HOUR"})

    assert micro_trades[0]["time"] == milli_trades[0]["time"] * 1000
    assert (micro_klines[0][0], micro_klines[0][6]) == (milli_klines[0][0] * 1000, milli_klines[0][6] * 1000)
    assert micro_klines[0][1:6] == milli_klines[0][1:6]
    assert time_body["serverTime"] > 10**15
    assert (refused, body["code"]) == (400, -1100)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/v3/klines?symbol=BTCUSDT", -1102),
        ("/api/v3/klines?symbol=BTCUSDT&interval=7m", -1120),
        ("/api/v3/klines?interval=1m", -1102),
        ("/api/v3/trades?symbol=NOPEUSDT", -1121),
        ("/api/v3/trades?symbol=BTCUSDT&limit=x", -1100),
        ("/api/v3/aggTrades?symbol=BTCUSDT&fromId=1&startTime=2", -1128),
        ("/api/v3/ticker/24hr?symbol=BTCUSDT&type=HUGE", -1139),
        ("/api/v3/ticker/price?symbols=BTCUSDT", -1100),
        ("/api/v3/ticker/price?symbol=BTCUSDT&symbols=[]", -1101),
        ("/api/v3/avgPrice", -1102),
    ],
)
async def test_bad_market_data_requests_get_binances_error_body(simulator, path, code):
    status, body = await rest(simulator, path)

    assert status == 400
    assert set(body) == {"code", "msg"} and body["code"] == code and body["msg"]


def test_klines_fill_quiet_minutes_with_the_previous_close():
    market = SimulatedMarket("BTCUSDT", random.Random(6), levels=10)
    start = 1_700_000_040_000  # a minute boundary
    market.trade("50000.00", "1", False, start + 1_000)
    market.trade("50100.00", "2", True, start + 3 * 60_000 + 5)

    klines = market.rest_klines("1m", start + 3 * 60_000 + 10, None, None, 10)

    assert [k[0] for k in klines] == [start + n * 60_000 for n in range(4)]
    assert klines[1][1:6] == ["50000.00000000"] * 4 + ["0.00000000"]
    assert (klines[3][4], klines[3][5], klines[3][9]) == ("50100.00000000", "2.00000000", "0.00000000")
    assert (klines[0][9], klines[0][8]) == ("1.00000000", 1)  # the taker bought


def test_weekly_and_monthly_klines_open_on_binances_boundaries():
    market = SimulatedMarket("BTCUSDT", random.Random(6), levels=10)
    wednesday = 1_700_000_000_000  # 2023-11-14 22:13 UTC
    market.trade("50000.00", "1", False, wednesday)

    (week,) = market.rest_klines("1w", wednesday, None, None, 1)
    (month,) = market.rest_klines("1M", wednesday, None, None, 1)

    assert week[0] == 1_699_833_600_000  # Monday 2023-11-13 00:00 UTC
    assert (month[0], month[6]) == (1_698_796_800_000, 1_701_388_799_999)  # November 2023


# --- the command ----------------------------------------------------------------------------------------


def test_simulate_exchange_starts_outside_debug_without_a_secret_key_and_says_where_once():
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "DJANGO_SETTINGS_MODULE")}
    env["DJANGO_DEBUG"] = "0"
    with exchange_process("--symbols", "BTCUSDT", env=env) as exchange:
        status, body = _get_json(f"{exchange.rest_url}/api/v3/ticker/price?symbol=BTCUSDT")
        lines = exchange.stop(TIMEOUT)

    assert (status, body["symbol"]) == (200, "BTCUSDT")
    assert exchange.process.returncode == 0
    assert sum("listening on" in line for line in lines) == 1, lines


def _get_json(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.status, orjson.loads(response.read())
