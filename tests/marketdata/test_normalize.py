"""Binance frames become our messages with the exchange's values unchanged; anything else is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketdata import normalize
from marketdata.exceptions import NormalizeError
from marketdata.normalize import (
    DepthDiff,
    ExchangeError,
    MarketMessage,
    ServerShutdown,
    SubscriptionResult,
    Unsupported,
)
from realtime import protocol
from tests.marketdata.builders import (
    DEPTH_UPDATE_SAMPLE,
    ERROR_REPLY_SAMPLE,
    LIST_SUBSCRIPTIONS_REPLY_SAMPLE,
    REST_DEPTH_SAMPLE,
    SERVER_SHUTDOWN_SAMPLE,
    SUBSCRIBE_REPLY_SAMPLE,
    TICKER_SAMPLE,
    TRADE_SAMPLE,
    combined,
    raw,
    sample,
)

SAMPLE_TIME = "2022-12-31T19:43:02.136Z"  # E=1672515782136 in the samples


def test_a_combined_ticker_becomes_our_ticker_with_the_exchange_values():
    event = normalize.parse_frame(combined("bnbbtc@ticker", TICKER_SAMPLE))

    assert isinstance(event, MarketMessage)
    assert event.message == {
        "type": "ticker",
        "symbol": "BNBBTC",
        "price": "0.0025",
        "price_change": "0.0015",
        "price_change_percent": "250.00",
        "high_price": "0.0025",
        "low_price": "0.0010",
        "volume": "10000",
        "timestamp": SAMPLE_TIME,
    }


def test_a_raw_ticker_payload_is_read_the_same_way():
    assert normalize.parse_frame(raw(TICKER_SAMPLE)) == normalize.parse_frame(combined("bnbbtc@ticker", TICKER_SAMPLE))


def test_a_negative_price_change_is_kept_as_sent():
    event = normalize.parse_frame(raw(sample(TICKER_SAMPLE, p="-0.00150000", P="-37.500")))

    assert event.message["price_change"] == "-0.00150000"
    assert event.message["price_change_percent"] == "-37.500"


def test_a_trade_where_the_buyer_was_the_maker_is_a_sell():
    event = normalize.parse_frame(combined("bnbbtc@trade", TRADE_SAMPLE))

    assert event.message == {
        "type": "trade",
        "symbol": "BNBBTC",
        "price": "0.001",
        "quantity": "100",
        "side": "sell",
        "timestamp": SAMPLE_TIME,
        "trade_id": 12345,
    }


def test_a_trade_where_the_buyer_was_the_taker_is_a_buy():
    event = normalize.parse_frame(raw(sample(TRADE_SAMPLE, m=False)))

    assert event.message["side"] == "buy"


def test_trailing_zeros_are_not_trimmed():
    event = normalize.parse_frame(raw(sample(TRADE_SAMPLE, p="50000.01000000", q="0.00100000")))

    assert (event.message["price"], event.message["quantity"]) == ("50000.01000000", "0.00100000")


def test_a_depth_update_becomes_a_diff_with_its_update_ids():
    event = normalize.parse_frame(combined("bnbbtc@depth@100ms", DEPTH_UPDATE_SAMPLE))

    assert event == DepthDiff(
        symbol="BNBBTC",
        first_update_id=157,
        final_update_id=160,
        bids=[["0.0024", "10"]],
        asks=[["0.0026", "100"]],
        event_time=1672515782136,
    )


def test_a_rest_depth_body_becomes_a_snapshot():
    snapshot = normalize.depth_snapshot(raw(REST_DEPTH_SAMPLE))

    assert snapshot.last_update_id == 1027024
    assert snapshot.bids == [["4.00000000", "431.00000000"]]
    assert snapshot.asks == [["4.00000200", "12.00000000"]]


def test_a_subscribe_reply_is_a_result_without_value():
    assert normalize.parse_frame(raw(SUBSCRIBE_REPLY_SAMPLE)) == SubscriptionResult(id=1, result=None)


def test_a_list_subscriptions_reply_carries_the_streams():
    assert normalize.parse_frame(raw(LIST_SUBSCRIPTIONS_REPLY_SAMPLE)) == SubscriptionResult(
        id=3, result=["btcusdt@aggTrade"]
    )


def test_an_error_reply_is_an_exchange_error():
    event = normalize.parse_frame(raw(ERROR_REPLY_SAMPLE))

    assert event == ExchangeError(code=2, message=ERROR_REPLY_SAMPLE["msg"], id=None)


def test_an_error_reply_wrapped_in_error_is_read_too():
    event = normalize.parse_frame(raw({"error": {"code": 2, "msg": "Invalid request"}, "id": 7}))

    assert event == ExchangeError(code=2, message="Invalid request", id=7)


@pytest.mark.parametrize(
    "frame",
    [
        raw(SERVER_SHUTDOWN_SAMPLE),
        raw({"e": "serverShutdown", "E": 1770123456789}),
        combined("!serverShutdown", {"e": "serverShutdown", "E": 1770123456789}),
    ],
    ids=["wrapped-event", "raw", "combined"],
)
def test_server_shutdown_is_recognised_in_every_shape(frame):
    assert normalize.parse_frame(frame) == ServerShutdown(event_time=1770123456789)


def test_an_event_we_do_not_use_is_unsupported_not_malformed():
    assert normalize.parse_frame(raw({"e": "aggTrade", "E": 1, "s": "BNBBTC"})) == Unsupported("aggTrade")


@pytest.mark.parametrize(
    "frame",
    [
        None,
        b"",
        b"not json",
        b"\x00\xff\x10",
        b"[1, 2, 3]",
        b'"a string"',
        raw({"hello": "world"}),
        raw({"e": 5}),
        combined("bnbbtc@trade", "not an object"),
    ],
    ids=["none", "empty", "text", "binary", "array", "string", "unknown-object", "bad-event-type", "bad-data"],
)
def test_frames_that_are_not_binance_frames_are_refused(frame):
    with pytest.raises(NormalizeError):
        normalize.parse_frame(frame)


@pytest.mark.parametrize(
    "changes",
    [
        {"c": 0.0025},  # a JSON number: it already went through a float
        {"c": "abc"},
        {"c": "1e-8"},
        {"c": "0.0025\n"},
        {"c": ""},
        {"c": "-0.0025"},  # a price is never negative
        {"P": "12.5%"},
        {"v": None},
        {"E": "1672515782136"},
        {"E": True},
        {"E": -1},
        {"E": 253_402_300_800_000},  # 10000-01-01: no timestamp of ours shows it
        {"s": "bnb btc"},
        {"s": "BNB BTC"},
        {"s": 42},
    ],
)
def test_a_ticker_with_a_bad_field_is_refused(changes):
    with pytest.raises(NormalizeError):
        normalize.parse_frame(raw(sample(TICKER_SAMPLE, **changes)))


@pytest.mark.parametrize(
    "changes",
    [{"m": "true"}, {"m": None}, {"t": "12345"}, {"p": 0.001}, {"q": "1,5"}, {"E": 253_402_300_800_000}],
)
def test_a_trade_with_a_bad_field_is_refused(changes):
    with pytest.raises(NormalizeError):
        normalize.parse_frame(raw(sample(TRADE_SAMPLE, **changes)))


@pytest.mark.parametrize(
    "changes",
    [
        {"U": 161},  # first id after the final id
        {"b": [["0.0024"]]},
        {"b": [["0.0024", 10]]},
        {"a": "0.0026"},
        {"u": None},
        {"E": 253_402_300_800_000},  # published later as the book's timestamp
    ],
)
def test_a_depth_update_with_a_bad_field_is_refused(changes):
    with pytest.raises(NormalizeError):
        normalize.parse_frame(raw(sample(DEPTH_UPDATE_SAMPLE, **changes)))


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        raw(sample(REST_DEPTH_SAMPLE, lastUpdateId="1027024")),
        raw(sample(REST_DEPTH_SAMPLE, bids=[[4.0, 431.0]])),
        raw({"code": -1121, "msg": "Invalid symbol."}),
    ],
)
def test_a_rest_depth_body_that_is_not_a_snapshot_is_refused(body):
    with pytest.raises(NormalizeError):
        normalize.depth_snapshot(body)


def test_a_payload_filed_under_another_symbols_stream_is_refused():
    with pytest.raises(NormalizeError, match="carries a payload for BNBBTC"):
        normalize.parse_frame(combined("btcusdt@trade", TRADE_SAMPLE))


def test_an_excerpt_is_short_and_on_one_line():
    text = normalize.excerpt("x" * 500 + "\n")

    assert len(text) <= normalize.EXCERPT_CHARS + 3
    assert "\n" not in normalize.excerpt("a\nb")
    assert normalize.excerpt(b"\xff") == "\ufffd"


# --- levels are checked all at once, with the same verdict as one by one -----------------------------

_VALUES = st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,4})?\Z") | st.text(max_size=6) | st.sampled_from(["1 2", "", " 1"])


@given(levels=st.lists(st.lists(_VALUES, min_size=2, max_size=2), max_size=6))
def test_a_diffs_levels_are_refused_exactly_when_one_value_is_not_a_decimal_string(levels):
    one_by_one = all(normalize._UNSIGNED_DECIMAL.fullmatch(value) for level in levels for value in level)
    payload = {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 1, "u": 2, "b": levels, "a": []}
    if one_by_one:
        assert normalize.depth_diff(payload).bids == levels
    else:
        with pytest.raises(NormalizeError, match="decimal string"):
            normalize.depth_diff(payload)


def test_a_level_value_that_is_not_a_string_is_refused():
    payload = {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 1, "u": 2, "b": [["1.0", 2]], "a": []}
    with pytest.raises(NormalizeError, match="'quantity' is not a decimal string"):
        normalize.depth_diff(payload)


# --- a well-formed trade is built in one step, with the same message or refusal as field by field ----

_ODD = st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=4) | st.integers(-3, 3)
_TRADE_FIELDS = {
    "s": st.sampled_from(["BTCUSDT", "ETH2USDT", "1INCHUSDT"]),
    "p": st.from_regex(r"\A[0-9]{1,6}(\.[0-9]{1,8})?\Z"),
    "q": st.from_regex(r"\A[0-9]{1,6}(\.[0-9]{1,8})?\Z"),
    "m": st.booleans(),
    "E": st.integers(min_value=0, max_value=2**53),
    "t": st.integers(min_value=0, max_value=2**53),
}
_ODD_SYMBOLS = st.sampled_from(["btcusdt", "B", "ETH-USDT", "BTCUSDT\n"])


@given(
    fields=st.fixed_dictionaries(_TRADE_FIELDS),
    spoiled=st.dictionaries(st.sampled_from(sorted(_TRADE_FIELDS)), _ODD | _ODD_SYMBOLS, max_size=2),
    missing=st.sets(st.sampled_from(sorted(_TRADE_FIELDS)), max_size=1),
)
def test_a_trade_is_the_field_by_field_message_or_refused_as_field_by_field(fields, spoiled, missing):
    payload = {"e": "trade", "T": 1, "M": True, **fields, **spoiled}
    for key in missing:
        del payload[key]
    try:
        expected = normalize.checked_trade(payload)
    except NormalizeError as refusal:
        with pytest.raises(NormalizeError) as fast_refusal:
            normalize.trade(payload)
        assert str(fast_refusal.value) == str(refusal)  # the same field named
        return
    built = normalize.trade(payload)
    assert built == expected
    assert list(built) == list(expected)  # the same key order, so the same encoded bytes


def test_a_trade_built_in_one_step_is_the_dataclass_message():
    built = protocol.trade_of("BTCUSDT", "1.5", "0.25", "sell", 7, SAMPLE_TIME)
    generic = protocol.Trade(
        symbol="BTCUSDT", price="1.5", quantity="0.25", side="sell", trade_id=7, timestamp=SAMPLE_TIME
    ).as_message()
    assert protocol.encode(built) == protocol.encode(generic)
