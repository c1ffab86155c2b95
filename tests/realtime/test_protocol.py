"""realtime.protocol: client frames in, server frames out. Pure: no sockets, no layer, no database."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime import protocol
from realtime.protocol import (
    TRADING_CHANNELS,
    ChannelRequest,
    Code,
    Endpoint,
    Ping,
    ProtocolError,
    Stream,
    SymbolRequest,
    parse,
)
from tests import messages

ISO_UTC_MILLIS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
EXCHANGE_TIME = messages.EXCHANGE_TIME

TRADING_LIST_TYPES = ("subscribe", "unsubscribe", "subscribe_symbol", "unsubscribe_symbol")
MARKET_LIST_TYPES = (
    "subscribe_ticker",
    "unsubscribe_ticker",
    "subscribe_trades",
    "unsubscribe_trades",
    "subscribe_orderbook",
    "unsubscribe_orderbook",
)


# --- builders -----------------------------------------------------------------------------------


def frame(kind: str | None = None, **fields) -> str:
    """A client frame as the browser would send it."""
    body = dict(fields) if kind is None else {"type": kind, **fields}
    return json.dumps(body)


def refused(raw, endpoint: Endpoint = Endpoint.TRADING, **kwargs) -> ProtocolError:
    """Parse a frame that must be refused, and return the error."""
    with pytest.raises(ProtocolError) as caught:
        parse(raw, endpoint, **kwargs)
    return caught.value


def ticker_message(symbol: str = "BTCUSDT", price: str = "50000.00") -> dict:
    return messages.ticker(symbol, price)


trade_message = messages.trade
orderbook_message = messages.orderbook
order_update_message = messages.order_update
risk_alert_message = messages.risk_alert
bot_status_message = messages.bot_status
portfolio_message = messages.portfolio


def symbol_request(kind: str, *symbols: str, endpoint: Endpoint) -> SymbolRequest:
    request = parse(frame(kind, symbols=list(symbols)), endpoint)
    assert isinstance(request, SymbolRequest)
    return request


# --- parse: accepted requests -------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", list(Endpoint))
def test_ping_is_accepted_on_both_endpoints(endpoint):
    assert parse(frame("ping"), endpoint) == Ping()


@pytest.mark.parametrize("endpoint", list(Endpoint))
def test_ping_ignores_extra_fields(endpoint):
    assert parse(frame("ping", id=5, channels="whatever"), endpoint) == Ping()


def test_subscribe_lists_the_requested_channels():
    request = parse(frame("subscribe", channels=["orders", "risk_alerts"]), Endpoint.TRADING)

    assert request == ChannelRequest(type="subscribe", subscribe=True, channels=("orders", "risk_alerts"))


def test_subscribe_accepts_every_trading_channel():
    request = parse(frame("subscribe", channels=list(TRADING_CHANNELS)), Endpoint.TRADING)

    assert request.channels == ("orders", "risk_alerts", "bot_status", "portfolio")


def test_unsubscribe_is_a_channel_request_that_does_not_subscribe():
    request = parse(frame("unsubscribe", channels=["orders"]), Endpoint.TRADING)

    assert request == ChannelRequest(type="unsubscribe", subscribe=False, channels=("orders",))


def test_duplicate_channels_are_listed_once_in_order():
    request = parse(frame("subscribe", channels=["portfolio", "orders", "portfolio"]), Endpoint.TRADING)

    assert request.channels == ("portfolio", "orders")


def test_subscribe_symbol_asks_for_tickers_on_the_trading_endpoint():
    request = parse(frame("subscribe_symbol", symbols=["BTCUSDT", "ETHUSDT"]), Endpoint.TRADING)

    assert request == SymbolRequest(
        type="subscribe_symbol", subscribe=True, stream=Stream.TICKER, symbols=("BTCUSDT", "ETHUSDT")
    )


def test_unsubscribe_symbol_is_accepted_on_the_trading_endpoint():
    request = parse(frame("unsubscribe_symbol", symbols=["BTCUSDT"]), Endpoint.TRADING)

    assert request == SymbolRequest(
        type="unsubscribe_symbol", subscribe=False, stream=Stream.TICKER, symbols=("BTCUSDT",)
    )


@pytest.mark.parametrize(
    ("kind", "stream", "subscribe"),
    [
        ("subscribe_ticker", Stream.TICKER, True),
        ("unsubscribe_ticker", Stream.TICKER, False),
        ("subscribe_trades", Stream.TRADES, True),
        ("unsubscribe_trades", Stream.TRADES, False),
        ("subscribe_orderbook", Stream.ORDERBOOK, True),
        ("unsubscribe_orderbook", Stream.ORDERBOOK, False),
    ],
)
def test_market_requests_name_their_stream(kind, stream, subscribe):
    request = parse(frame(kind, symbols=["BTCUSDT"]), Endpoint.MARKET)

    assert request == SymbolRequest(type=kind, subscribe=subscribe, stream=stream, symbols=("BTCUSDT",))


def test_lower_case_symbols_are_accepted_and_upper_cased():
    request = parse(frame("subscribe_ticker", symbols=["btcusdt", "EthUsdt"]), Endpoint.MARKET)

    assert request.symbols == ("BTCUSDT", "ETHUSDT")


def test_symbols_are_de_duplicated_after_upper_casing():
    request = parse(frame("subscribe_trades", symbols=["BTCUSDT", "btcusdt", "ETHUSDT", "BtcUsdt"]), Endpoint.MARKET)

    assert request.symbols == ("BTCUSDT", "ETHUSDT")


def test_surrounding_whitespace_around_a_symbol_is_ignored():
    request = parse(frame("subscribe_symbol", symbols=[" btcusdt "]), Endpoint.TRADING)

    assert request.symbols == ("BTCUSDT",)


def test_a_frame_as_utf8_bytes_is_parsed_like_text():
    request = parse(frame("subscribe_symbol", symbols=["BTCUSDT"]).encode(), Endpoint.TRADING)

    assert request.symbols == ("BTCUSDT",)


def test_exactly_max_items_is_accepted():
    symbols = [f"SYM{i:02d}USDT" for i in range(5)]

    assert len(parse(frame("subscribe_ticker", symbols=symbols), Endpoint.MARKET, max_items=5).symbols) == 5


def test_request_types_lists_what_each_endpoint_accepts():
    assert set(protocol.request_types(Endpoint.TRADING)) == {*TRADING_LIST_TYPES, "refresh", "ping"}
    assert set(protocol.request_types(Endpoint.MARKET)) == {*MARKET_LIST_TYPES, "ping"}


# --- parse: refused requests --------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", list(Endpoint))
def test_a_binary_frame_is_refused(endpoint):
    error = refused(None, endpoint)

    assert error.code == Code.INVALID_MESSAGE
    assert "binary" in error.message.lower()


@pytest.mark.parametrize("raw", ["{", "not json", '{"type": "ping",}', "", "{'type': 'ping'}"])
def test_malformed_json_is_refused_as_invalid_message(raw):
    error = refused(raw)

    assert error.code == Code.INVALID_MESSAGE
    assert "json" in error.message.lower()


def test_invalid_utf8_bytes_are_refused_as_malformed_json():
    assert refused(b'{"type": "\xff"}').code == Code.INVALID_MESSAGE


@pytest.mark.parametrize("raw", ["[]", '["ping"]', '"ping"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_refused(raw):
    error = refused(raw)

    assert error.code == Code.INVALID_MESSAGE
    assert "object" in error.message


@pytest.mark.parametrize(
    "raw", ["{}", '{"channels": ["orders"]}', '{"type": null}', '{"type": 1}', '{"type": ["ping"]}']
)
def test_a_missing_or_non_string_type_is_refused(raw):
    error = refused(raw)

    assert error.code == Code.INVALID_MESSAGE
    assert "type" in error.message


@pytest.mark.parametrize("endpoint", list(Endpoint))
def test_an_unknown_type_is_refused_and_the_error_lists_what_is_accepted(endpoint):
    error = refused(frame("subscribe_everything", channels=["orders"]), endpoint)

    assert error.code == Code.INVALID_MESSAGE
    assert "subscribe_everything" in error.message
    for accepted in protocol.request_types(endpoint):
        assert accepted in error.message


@pytest.mark.parametrize("kind", MARKET_LIST_TYPES)
def test_a_market_request_is_refused_on_the_trading_endpoint(kind):
    error = refused(frame(kind, symbols=["BTCUSDT"]), Endpoint.TRADING)

    assert kind in error.message
    assert error.code == Code.INVALID_MESSAGE


@pytest.mark.parametrize("kind", TRADING_LIST_TYPES)
def test_a_trading_request_is_refused_on_the_market_endpoint(kind):
    field = "channels" if kind.endswith("subscribe") else "symbols"
    value = ["orders"] if field == "channels" else ["BTCUSDT"]

    error = refused(frame(kind, **{field: value}), Endpoint.MARKET)

    assert kind in error.message
    assert error.code == Code.INVALID_MESSAGE


@pytest.mark.parametrize(
    "channels",
    ["orders", {"orders": True}, None, 1, ["orders", 1], [1, 2], [None], [["orders"]], []],
    ids=["string", "object", "null", "number", "list-with-number", "numbers", "list-with-null", "nested", "empty"],
)
def test_channels_must_be_a_non_empty_list_of_strings(channels):
    error = refused(frame("subscribe", channels=channels))

    assert error.code == Code.INVALID_MESSAGE
    assert "channels" in error.message


def test_a_subscribe_without_channels_is_refused():
    assert "channels" in refused(frame("subscribe")).message


@pytest.mark.parametrize(
    ("kind", "endpoint"),
    [
        ("subscribe_symbol", Endpoint.TRADING),
        ("subscribe_ticker", Endpoint.MARKET),
        ("unsubscribe_trades", Endpoint.MARKET),
    ],
)
@pytest.mark.parametrize(
    "symbols", ["BTCUSDT", ["BTCUSDT", 5], [5], [], None], ids=["string", "mixed", "number", "empty", "null"]
)
def test_symbols_must_be_a_non_empty_list_of_strings(kind, endpoint, symbols):
    error = refused(frame(kind, symbols=symbols), endpoint)

    assert error.code == Code.INVALID_MESSAGE
    assert "symbols" in error.message


def test_an_unknown_channel_is_named_and_the_whole_request_is_refused():
    error = refused(frame("subscribe", channels=["orders", "balances", "Orders"]))

    assert error.code == Code.INVALID_MESSAGE
    assert "balances" in error.message
    assert "Orders" in error.message
    assert error.invalid == ["balances", "Orders"]
    assert "orders" not in error.invalid  # the good one is not blamed, and not half-applied


def test_the_unknown_channel_error_lists_the_available_channels():
    error = refused(frame("unsubscribe", channels=["nope"]))

    for channel in TRADING_CHANNELS:
        assert channel in error.message


@pytest.mark.parametrize(
    "bad",
    ["BTC-USDT", "BTC/USDT", "B", "A" * 21, "", "   ", "BTC USDT", "btcusdt;drop", "market.ticker.x", "ÄBCUSDT"],
)
def test_a_malformed_symbol_is_named_and_the_whole_request_is_refused(bad):
    error = refused(frame("subscribe_ticker", symbols=["BTCUSDT", bad]), Endpoint.MARKET)

    assert error.code == Code.INVALID_MESSAGE
    assert error.invalid == [bad.strip().upper()]
    assert "BTCUSDT" not in error.invalid


def test_too_many_items_are_refused_with_the_limit_in_the_message():
    error = refused(
        frame("subscribe_ticker", symbols=[f"SYM{i:02d}USDT" for i in range(6)]), Endpoint.MARKET, max_items=5
    )

    assert error.code == Code.INVALID_MESSAGE
    assert "5" in error.message
    assert "6" in error.message


def test_the_default_limit_is_fifty_items():
    fifty = [f"SYM{i:02d}USDT" for i in range(50)]

    assert len(parse(frame("subscribe_ticker", symbols=fifty), Endpoint.MARKET).symbols) == 50
    refused(frame("subscribe_ticker", symbols=[*fifty, "ONEMORE"]), Endpoint.MARKET)


def test_unknown_symbols_error_names_every_symbol():
    error = protocol.unknown_symbols_error(("DOGEUSDT", "PEPEUSDT"))

    assert error.code == Code.INVALID_MESSAGE
    assert "DOGEUSDT" in error.message
    assert "PEPEUSDT" in error.message
    assert error.invalid == ["DOGEUSDT", "PEPEUSDT"]


# --- acknowledgements ---------------------------------------------------------------------------


def test_subscribe_is_acked_with_its_channels():
    ack = protocol.channels_ack(True, ("orders", "portfolio"))

    assert ack["type"] == "subscribed"
    assert ack["channels"] == ["orders", "portfolio"]
    assert set(ack) == {"type", "channels", "timestamp"}


def test_unsubscribe_is_acked_as_unsubscribed():
    ack = protocol.channels_ack(False, ["orders"])

    assert ack["type"] == "unsubscribed"
    assert ack["channels"] == ["orders"]


def test_subscribe_symbol_is_acked_with_symbols_and_no_stream():
    ack = protocol.symbols_ack(symbol_request("subscribe_symbol", "btcusdt", "ETHUSDT", endpoint=Endpoint.TRADING))

    assert ack["type"] == "subscribed"
    assert ack["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert "stream" not in ack


def test_unsubscribe_symbol_is_acked_as_unsubscribed_without_a_stream():
    ack = protocol.symbols_ack(symbol_request("unsubscribe_symbol", "BTCUSDT", endpoint=Endpoint.TRADING))

    assert ack["type"] == "unsubscribed"
    assert ack["symbols"] == ["BTCUSDT"]
    assert "stream" not in ack


@pytest.mark.parametrize(
    ("kind", "ack_type", "stream"),
    [
        ("subscribe_ticker", "subscribed", "ticker"),
        ("subscribe_trades", "subscribed", "trades"),
        ("subscribe_orderbook", "subscribed", "orderbook"),
        ("unsubscribe_ticker", "unsubscribed", "ticker"),
        ("unsubscribe_trades", "unsubscribed", "trades"),
        ("unsubscribe_orderbook", "unsubscribed", "orderbook"),
    ],
)
def test_market_requests_are_acked_with_their_stream_and_symbols(kind, ack_type, stream):
    ack = protocol.symbols_ack(symbol_request(kind, "BTCUSDT", "ethusdt", endpoint=Endpoint.MARKET))

    assert ack["type"] == ack_type
    assert ack["stream"] == stream
    assert type(ack["stream"]) is str  # plain JSON string, not the enum
    assert ack["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert set(ack) == {"type", "stream", "symbols", "timestamp"}


def test_pong_answers_ping():
    assert protocol.pong()["type"] == "pong"


# --- every server frame -------------------------------------------------------------------------


def every_server_frame() -> dict[str, dict]:
    return {
        "pong": protocol.pong(),
        "heartbeat": protocol.heartbeat(),
        "error": protocol.error(Code.INVALID_MESSAGE, "bad"),
        "channels_ack": protocol.channels_ack(True, ["orders"]),
        "symbols_ack": protocol.symbols_ack(symbol_request("subscribe_ticker", "BTCUSDT", endpoint=Endpoint.MARKET)),
        "ticker": ticker_message(),
        "trade": trade_message(),
        "orderbook": orderbook_message(),
        "order_update": order_update_message(),
        "risk_alert": risk_alert_message(),
        "bot_status": bot_status_message(),
        "portfolio": portfolio_message(),
    }


@pytest.mark.parametrize("name", list(every_server_frame()))
def test_every_server_frame_has_a_type_and_an_iso_utc_millisecond_timestamp(name):
    message = every_server_frame()[name]

    assert isinstance(message["type"], str)
    assert message["type"]
    assert ISO_UTC_MILLIS.match(message["timestamp"]), message["timestamp"]


@pytest.mark.parametrize("name", list(every_server_frame()))
def test_every_server_frame_encodes_to_json(name):
    message = every_server_frame()[name]

    assert json.loads(protocol.encode(message)) == json.loads(json.dumps(message, default=str))


def test_frames_built_now_carry_the_current_time():
    before = datetime.now(UTC) - timedelta(seconds=1)
    stamped = datetime.strptime(protocol.pong()["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)

    assert before <= stamped <= datetime.now(UTC) + timedelta(seconds=1)


def test_market_frames_keep_the_exchange_timestamp():
    assert ticker_message()["timestamp"] == EXCHANGE_TIME
    assert trade_message()["timestamp"] == EXCHANGE_TIME
    assert orderbook_message()["timestamp"] == EXCHANGE_TIME


def test_a_trading_frame_keeps_a_given_timestamp():
    assert order_update_message(timestamp=EXCHANGE_TIME)["timestamp"] == EXCHANGE_TIME


def test_iso_timestamp_converts_to_utc_and_keeps_milliseconds():
    moment = datetime(2023, 12, 1, 13, 30, 0, 987654, tzinfo=timezone(timedelta(hours=1, minutes=30)))

    assert protocol.iso_timestamp(moment) == "2023-12-01T12:00:00.987Z"


def test_iso_timestamp_pads_milliseconds():
    assert protocol.iso_timestamp(datetime(2024, 1, 2, 3, 4, 5, 7000, tzinfo=UTC)) == "2024-01-02T03:04:05.007Z"


@pytest.mark.parametrize(
    ("millis", "expected"),
    [
        (1701432000000, "2023-12-01T12:00:00.000Z"),
        (1701432000123, "2023-12-01T12:00:00.123Z"),
        (1701432000005, "2023-12-01T12:00:00.005Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        ("1701432000999", "2023-12-01T12:00:00.999Z"),
    ],
)
def test_iso_from_millis_turns_exchange_time_into_our_timestamp(millis, expected):
    assert protocol.iso_from_millis(millis) == expected


# --- decimal_str --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1E+5"), "100000"),
        (Decimal("0.00000001"), "0.00000001"),
        (Decimal("1E-8"), "0.00000001"),
        (Decimal("50000.00"), "50000"),
        (Decimal("0.5000"), "0.5"),
        (Decimal("100"), "100"),
        (Decimal("12000.000"), "12000"),
        (Decimal("-1.2300"), "-1.23"),
        (Decimal("0"), "0"),
        (Decimal("0.000"), "0"),
        (Decimal("-0"), "0"),
        (Decimal("-0.00"), "0"),
        (Decimal("123456789012345.123456789"), "123456789012345.123456789"),
        (7, "7"),
        (0, "0"),
    ],
)
def test_decimal_str_is_plain_with_no_exponent_and_no_trailing_zeros(value, expected):
    assert protocol.decimal_str(value) == expected


@pytest.mark.parametrize("text", ["50000.00", "0.10", "1E+5", "abc", ""])
def test_decimal_str_passes_strings_through_unchanged(text):
    assert protocol.decimal_str(text) == text


def test_decimal_str_keeps_none():
    assert protocol.decimal_str(None) is None


@pytest.mark.parametrize("value", [0.1, 50000.0, float("nan")])
def test_decimal_str_refuses_a_float(value):
    with pytest.raises(TypeError):
        protocol.decimal_str(value)


def test_order_update_refuses_a_float_quantity():
    with pytest.raises(TypeError):
        order_update_message(filled_quantity=0.5)


# --- trading frames -----------------------------------------------------------------------------


def test_order_update_has_the_designed_shape_with_decimals_as_strings():
    message = order_update_message(timestamp=EXCHANGE_TIME)

    assert message == {
        "type": "order_update",
        "order_id": "123456",
        "symbol": "BTCUSDT",
        "side": "buy",
        "order_type": "limit",
        "status": "filled",
        "quantity": "0.5",
        "price": "50000",
        "filled_quantity": "0.5",
        "remaining_quantity": "0",
        "average_price": "50000",
        "timestamp": EXCHANGE_TIME,
    }


def test_order_update_keeps_a_missing_average_price_as_null():
    assert order_update_message(status="new", average_price=None)["average_price"] is None


def test_order_update_turns_its_amounts_into_strings():
    message = order_update_message(price=Decimal("49000.50"), quantity=Decimal("1.000"), fee=Decimal("0.0500"))

    assert message["price"] == "49000.5"
    assert message["quantity"] == "1"
    assert message["fee"] == "0.05"


@pytest.mark.parametrize(
    "build",
    [
        lambda: order_update_message(client_tag="dca"),
        lambda: risk_alert_message(notional=Decimal("1.50")),
        lambda: bot_status_message(performance={"total_pnl": "1", "win_rate": "0", "trades_today": 0, "x": 1}),
        lambda: protocol.ticker(symbol="BTCUSDT", price="1", extra="no"),
    ],
    ids=["order_update", "risk_alert", "bot_performance", "ticker"],
)
def test_a_field_outside_the_contract_is_refused(build):
    with pytest.raises(TypeError):
        build()


def test_an_extra_named_type_never_replaces_the_frame_type():
    try:
        message = order_update_message(type="limit")
    except (TypeError, ValueError):
        return  # refusing the reserved name is as good as keeping the frame type
    assert message["type"] == "order_update"


def test_risk_alert_turns_decimals_into_strings():
    message = risk_alert_message()

    assert message["type"] == "risk_alert"
    assert message["alert_type"] == "position_limit_exceeded"
    assert message["severity"] == "high"
    assert message["limit_value"] == "10000"
    assert message["current_value"] == "12000"


def test_risk_alert_names_its_symbol_when_given():
    assert risk_alert_message(symbol="BTCUSDT")["symbol"] == "BTCUSDT"
    assert "symbol" not in risk_alert_message()


def test_bot_status_turns_decimal_performance_into_strings_and_keeps_counts():
    message = bot_status_message()

    assert message["type"] == "bot_status"
    assert message["bot_id"] == "7"
    assert message["performance"] == {"total_pnl": "250.5", "win_rate": "65.5", "trades_today": 15}


def test_portfolio_turns_total_and_position_decimals_into_strings():
    message = portfolio_message()

    assert message["type"] == "portfolio"
    assert message["total_value"] == "12500.1"
    assert message["positions"] == [
        {
            "symbol": "BTCUSDT",
            "quantity": "0.25",
            "average_price": "48000",
            "market_price": "50000.4",
            "market_value": "12500.1",
            "unrealized_pnl": "500.1",
            "realized_pnl": "0",
        }
    ]


def test_portfolio_with_no_positions_is_an_empty_list():
    assert portfolio_message(total_value=Decimal("0"), positions=[])["positions"] == []


@pytest.mark.parametrize("build", [order_update_message, risk_alert_message, bot_status_message, portfolio_message])
def test_trading_frames_contain_no_float_after_encoding(build):
    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        else:
            assert not isinstance(value, float), value

    walk(orjson.loads(protocol.encode(build())))


@pytest.mark.parametrize(
    "build",
    [
        lambda: order_update_message(price=49000.5),
        lambda: bot_status_message(performance={"total_pnl": 250.5}),
        lambda: portfolio_message(positions=[{"symbol": "BTCUSDT", "quantity": 0.25}]),
    ],
    ids=["order_update-extra", "bot_status-performance", "portfolio-position"],
)
def test_a_float_anywhere_in_a_trading_frame_is_refused(build):
    with pytest.raises(TypeError):
        build()


# --- market frames ------------------------------------------------------------------------------


def test_ticker_has_the_designed_fields():
    assert ticker_message() == {
        "type": "ticker",
        "symbol": "BTCUSDT",
        "price": "50000.00",
        "price_change": "1250.00",
        "price_change_percent": "2.56",
        "high_price": "51000.00",
        "low_price": "48500.00",
        "volume": "1250.75",
        "timestamp": EXCHANGE_TIME,
    }


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_trade_accepts_buy_and_sell(side):
    assert trade_message(side=side)["side"] == side


@pytest.mark.parametrize("side", ["BUY", "Sell", "bid", "", "maker"])
def test_trade_rejects_a_side_other_than_buy_or_sell(side):
    with pytest.raises(ValueError, match="side"):
        trade_message(side=side)


def test_orderbook_keeps_levels_in_the_given_order():
    message = orderbook_message()

    assert message["bids"][0] == ["49950.00", "1.5"]
    assert message["asks"][0] == ["50050.00", "1.2"]


decimal_strings = st.from_regex(r"\d{1,12}(\.\d{1,10})?", fullmatch=True)
level = st.tuples(decimal_strings, decimal_strings)
book_fields = st.fixed_dictionaries(
    {
        "symbol": st.from_regex(protocol.SYMBOL_PATTERN, fullmatch=True),
        "bids": st.lists(st.one_of(level, level.map(list)), max_size=25),
        "asks": st.lists(st.one_of(level, level.map(list)), max_size=25),
        "timestamp": st.just(EXCHANGE_TIME),
        # None is how an optional field is left out (the builders' defaults); each is there half the time.
        "last_update_id": st.none() | st.integers(min_value=0, max_value=2**63 - 1),
        "checksum": st.none() | st.integers(min_value=0, max_value=2**32 - 1),
        "seq": st.none() | st.integers(min_value=0, max_value=2**53),
    }
)


@given(book_fields)
def test_orderbook_is_the_generic_definitions_message_byte_for_byte(fields):
    generic = protocol.OrderBook(**fields).as_message()

    built = protocol.orderbook(**fields)

    assert list(built) == list(generic)  # the same keys, in the same order, the same ones left out
    assert protocol.encode(built) == protocol.encode(generic)


def test_orderbook_without_a_timestamp_is_stamped_now_like_every_frame():
    built = protocol.orderbook(symbol="BTCUSDT", bids=[], asks=[])

    assert ISO_UTC_MILLIS.match(built["timestamp"])
    assert list(built) == list(protocol.OrderBook(symbol="BTCUSDT", bids=[], asks=[]).as_message())


def test_orderbook_takes_exactly_the_fields_of_its_definition():
    definition = {field.name for field in dataclasses.fields(protocol.OrderBook)}

    assert set(inspect.signature(protocol.orderbook).parameters) == definition


# --- channel-layer events -----------------------------------------------------------------------


@pytest.mark.parametrize("build", [ticker_message, orderbook_message])
def test_market_event_for_state_carries_a_conflation_key_per_type_and_symbol(build):
    event = protocol.market_event(build("ETHUSDT"), conflate=True)

    assert event["type"] == protocol.MARKET_EVENT == "market.message"
    assert event["key"] == protocol.conflation_key(build("ETHUSDT")["type"], "ETHUSDT")
    assert event["key"] != protocol.market_event(build("BTCUSDT"), conflate=True)["key"]


def test_ticker_and_orderbook_keys_differ_for_the_same_symbol():
    ticker_key = protocol.market_event(ticker_message(), conflate=True)["key"]
    book_key = protocol.market_event(orderbook_message(), conflate=True)["key"]

    assert ticker_key != book_key


def test_market_event_for_a_trade_carries_no_key():
    event = protocol.market_event(trade_message(), conflate=False)

    assert event["key"] is None
    assert event["kind"] == "trade"


def test_market_event_carries_the_message_already_encoded():
    message = ticker_message()

    event = protocol.market_event(message, conflate=True)

    assert isinstance(event["text"], str)
    assert json.loads(event["text"]) == message
    assert event["kind"] == "ticker"
    assert set(event) == {"type", "text", "key", "kind"}  # no dict copy riding along to be re-encoded


def test_market_event_encodes_exactly_once(monkeypatch):
    calls = []
    real_encode = protocol.encode
    monkeypatch.setattr(protocol, "encode", lambda message: calls.append(message) or real_encode(message))

    protocol.market_event(orderbook_message(), conflate=True)

    assert len(calls) == 1


def test_user_event_carries_the_message_already_encoded():
    message = order_update_message()

    event = protocol.user_event(message)

    assert event["type"] == protocol.USER_EVENT == "user.message"
    assert json.loads(event["text"]) == message
    assert event["kind"] == "order_update"


class RecordingLayer:
    def __init__(self):
        self.sent: list[tuple[str, dict]] = []

    async def group_send(self, group: str, event: dict) -> None:
        self.sent.append((group, event))


@pytest.mark.parametrize(
    ("build", "conflated"),
    [(ticker_message, True), (orderbook_message, True), (trade_message, False)],
    ids=["ticker", "orderbook", "trade"],
)
async def test_published_tickers_and_books_are_conflated_and_trades_are_not(monkeypatch, build, conflated):
    from realtime import publish

    layer = RecordingLayer()
    monkeypatch.setattr(publish, "get_channel_layer", lambda alias="default": layer)

    await publish.apublish_market(build())

    [(group, event)] = layer.sent
    assert group.endswith(".btcusdt")
    assert (event["key"] is not None) is conflated


# --- error frames -------------------------------------------------------------------------------


def test_error_frame_carries_code_and_message():
    message = protocol.error(Code.AUTH_FAILED, "Authentication token required")

    assert message["type"] == "error"
    assert message["code"] == 4001
    assert message["message"] == "Authentication token required"


def test_error_from_a_protocol_error_keeps_code_message_and_details():
    error = refused(frame("subscribe", channels=["balances"]))

    message = protocol.error_from(error)

    assert message["type"] == "error"
    assert message["code"] == Code.INVALID_MESSAGE == 4004
    assert message["message"] == error.message
    assert message["invalid"] == ["balances"]


def test_protocol_error_defaults_to_invalid_message():
    assert ProtocolError("nope").code == 4004


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUTH_FAILED", 4001),
        ("USER_INACTIVE", 4002),
        ("TOO_MANY_CONNECTIONS", 4003),
        ("INVALID_MESSAGE", 4004),
        ("RATE_LIMITED", 4029),
    ],
)
def test_error_codes_match_the_contract(name, value):
    assert getattr(Code, name) == value


# --- resume positions and token refresh ---------------------------------------------------------


def test_subscribe_with_since_carries_each_position():
    raw = frame("subscribe", channels=["orders", "portfolio"], since={"orders": {"epoch": "e1", "seq": 7}})
    request = parse(raw, Endpoint.TRADING)

    assert isinstance(request, ChannelRequest)
    assert request.since == {"orders": protocol.Since(epoch="e1", seq=7)}


def test_subscribe_trades_accepts_since_keyed_by_symbol():
    raw = frame("subscribe_trades", symbols=["BTCUSDT"], since={"BTCUSDT": {"epoch": "w", "seq": 0}})
    request = parse(raw, Endpoint.MARKET)

    assert request.since == {"BTCUSDT": protocol.Since(epoch="w", seq=0)}


@pytest.mark.parametrize(
    ("kind", "field", "since", "endpoint", "why"),
    [
        ("subscribe", "channels", {"bot_status": {"epoch": "e", "seq": 1}}, Endpoint.TRADING, "does not subscribe"),
        ("subscribe", "channels", {"orders": {"epoch": "e", "seq": -1}}, Endpoint.TRADING, "integer >= 0"),
        ("subscribe", "channels", {"orders": {"epoch": 5, "seq": 1}}, Endpoint.TRADING, "epoch"),
        ("subscribe", "channels", {"orders": {"epoch": "e", "seq": True}}, Endpoint.TRADING, "integer"),
        ("subscribe", "channels", ["orders"], Endpoint.TRADING, "must be an object"),
        ("unsubscribe", "channels", {"orders": {"epoch": "e", "seq": 1}}, Endpoint.TRADING, "only when subscribing"),
        ("subscribe_ticker", "symbols", {"BTCUSDT": {"epoch": "e", "seq": 1}}, Endpoint.MARKET, "only when"),
    ],
)
def test_a_bad_since_is_refused(kind, field, since, endpoint, why):
    names = ["orders"] if field == "channels" else ["BTCUSDT"]
    error = refused(frame(kind, **{field: names, "since": since}), endpoint)

    assert error.code == Code.INVALID_MESSAGE and why in error.message


def test_refresh_carries_the_token():
    assert parse(frame("refresh", token=" abc.def.ghi "), Endpoint.TRADING) == protocol.Refresh(token="abc.def.ghi")


@pytest.mark.parametrize("token", [None, "", "   ", 42, ["x"]])
def test_refresh_without_a_token_string_is_refused(token):
    assert "token" in refused(frame("refresh", token=token), Endpoint.TRADING).message


def test_refresh_is_not_a_market_request():
    assert "Unknown message type" in refused(frame("refresh", token="x"), Endpoint.MARKET).message


# --- the flat fast path of tickers and trades ---------------------------------------------------------

_DIGITS = st.from_regex(r"\A[0-9]{1,6}(\.[0-9]{1,8})?\Z")
_OPTIONAL_INT = st.none() | st.integers(min_value=0, max_value=2**53)


@given(
    price=_DIGITS,
    quantity=_DIGITS,
    side=st.sampled_from(["buy", "sell"]),
    trade_id=_OPTIONAL_INT,
    seq=_OPTIONAL_INT,
    timestamp=st.sampled_from([None, "2026-12-01T00:00:00.000Z"]),
)
def test_a_trade_built_flat_is_the_dataclass_message_byte_for_byte(price, quantity, side, trade_id, seq, timestamp):
    fields = dict(symbol="BTCUSDT", price=price, quantity=quantity, side=side, trade_id=trade_id, seq=seq)
    fields["timestamp"] = timestamp or EXCHANGE_TIME
    assert protocol.encode(protocol.trade(**fields)) == protocol.encode(protocol.Trade(**fields).as_message())


@given(values=st.lists(_DIGITS, min_size=6, max_size=6), seq=_OPTIONAL_INT, omit_seq=st.booleans())
def test_a_ticker_built_flat_is_the_dataclass_message_byte_for_byte(values, seq, omit_seq):
    names = ("price", "price_change", "price_change_percent", "high_price", "low_price", "volume")
    fields = {"symbol": "ETHUSDT", **dict(zip(names, values, strict=True)), "timestamp": EXCHANGE_TIME}
    if not omit_seq:
        fields["seq"] = seq
    assert protocol.encode(protocol.ticker(**fields)) == protocol.encode(protocol.Ticker(**fields).as_message())


def test_the_flat_path_leaves_odd_fields_to_the_dataclass():
    base = dict(symbol="BTCUSDT", price="1", quantity="2", side="buy", timestamp=EXCHANGE_TIME)
    with pytest.raises(TypeError):
        protocol.trade(**{**base, "extra": "no"})
    with pytest.raises(TypeError):
        protocol.trade(**{k: v for k, v in base.items() if k != "quantity"})
    # A Decimal is not plain: the dataclass path turns it into its string, as before.
    assert protocol.trade(**{**base, "price": Decimal("1.50")})["price"] == "1.5"
    assert protocol.trade(**{k: v for k, v in base.items() if k != "timestamp"})["timestamp"]


@pytest.mark.parametrize("level", [["1.5", 2.0], [1.5, "2"], ["1.5", Decimal("2")], ["1.5", None]])
def test_an_order_book_level_that_is_not_strings_is_refused(level):
    with pytest.raises(TypeError, match="strings"):
        protocol.orderbook(symbol="BTCUSDT", bids=[["1.0", "1"], level], asks=[], timestamp=EXCHANGE_TIME)
    with pytest.raises(TypeError, match="strings"):
        protocol.orderbook(symbol="BTCUSDT", bids=[], asks=[level], timestamp=EXCHANGE_TIME)
