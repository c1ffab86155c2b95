"""The local exchange speaks Binance's stream and REST protocol well enough for the real procedure to work."""

from __future__ import annotations

import asyncio
import itertools
import random
from decimal import Decimal

import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode

from marketdata import normalize
from marketdata.exceptions import NormalizeError
from marketdata.normalize import MarketMessage, ServerShutdown
from marketdata.orderbook import OrderBook, Outcome
from marketdata.simulated_market import SimulatedMarket
from marketdata.simulator import GARBAGE_FRAMES
from tests.marketdata.exchange import connect, http, payload_of, recv_json, recv_until, running_simulator
from tests.support import TIMEOUT

TICKER_FIELDS = {"e", "E", "s", "p", "P", "w", "x", "c", "Q", "b", "B", "a", "A", "o", "h", "l", "v", "q"}
TICKER_FIELDS |= {"O", "C", "F", "L", "n"}
TRADE_FIELDS = {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
DEPTH_FIELDS = {"e", "E", "s", "U", "u", "b", "a"}
QUIET = 0.3  # how long "nothing arrives" is watched for


@pytest.fixture
async def simulator():
    async with running_simulator() as simulator:
        yield simulator


def is_reply(frame: dict) -> bool:
    return "id" in frame and ("result" in frame or "code" in frame)


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
        "bad-prop",
        "bad-val",
    ],
)
async def test_a_bad_request_gets_binances_error_reply_and_the_connection_stays_open(simulator, message, code):
    async with await connect(f"{simulator.ws_url}/ws") as ws:
        await ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())
        reply = await recv_until(ws, lambda f: "code" in f)
        still_open = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 10})

    assert reply["code"] == code
    assert reply["msg"]
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

    assert reply["code"] == 2


async def test_a_url_naming_a_malformed_stream_is_refused_before_the_upgrade(simulator):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(f"{simulator.ws_url}/stream?streams=btcusdt@trade/BAD")

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

    assert book.top(1000) == (final.bids, final.asks)


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


async def test_shutdown_sends_the_server_shutdown_event(simulator):
    async with await connect(f"{simulator.ws_url}/ws") as ws:
        await simulator.wait_until(lambda s: len(s.clients) == 1, TIMEOUT)
        await http("POST", f"{simulator.rest_url}/_sim/shutdown")
        frame = await asyncio.wait_for(ws.recv(), TIMEOUT)

    assert isinstance(normalize.parse_frame(frame), ServerShutdown)


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
