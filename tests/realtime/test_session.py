"""realtime.session: one connection's whole state, driven by frames, layer events and the clock, without a server."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from realtime import flow, groups, protocol
from realtime.middleware import validate_access_token
from realtime.protocol import Code, Endpoint, Stream
from realtime.session import (
    BATCH_MAX_BYTES,
    DRAIN_POLL_SECONDS,
    CheckToken,
    Close,
    Drain,
    FetchSnapshots,
    FillGap,
    Join,
    Leave,
    Limits,
    Loaded,
    LoadPositions,
    MarketSub,
    Revocations,
    Send,
    Session,
    SubscriptionsChanged,
    UserSub,
)
from tests import messages
from tests.support import access_token, forged_token, refresh_token

START = 1000.0  # the adapter's monotonic clock when the connection opened
WALL = 1_800_000_000.0  # seconds since the epoch at that moment
ENABLED = frozenset({"BTCUSDT", "ETHUSDT", "SOLUSDT"})
SLOW = flow.HIGH_WATER  # a socket backlog at which the client counts as not keeping up
USER_ID = 42


def limits(**changes) -> Limits:
    """Small limits, so that every one of them is easy to reach."""
    values = {
        "rate_per_second": 10.0,
        "burst": 20,
        "max_message_bytes": 1024,
        "max_items_per_request": 10,
        "max_subscriptions": 5,
        "queue_size": 4,
        "heartbeat_interval": 30.0,
    }
    return Limits(**{**values, **changes})


def session(endpoint: Endpoint = Endpoint.MARKET, *, user_id=None, expires_at=None, **limit_changes) -> Session:
    return Session(endpoint, limits(**limit_changes), START, user_id=user_id, expires_at=expires_at)


def trading(**limit_changes) -> Session:
    """A /ws/trading session whose user was admitted."""
    return session(Endpoint.TRADING, user_id=USER_ID, **limit_changes)


def frame(kind: str, **fields) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


def request(s: Session, kind: str, at: float = START, **fields) -> list:
    return s.receive(frame(kind, **fields), at, ENABLED)


def sent(actions: list) -> list[dict]:
    """The frames among the actions, decoded."""
    return [orjson.loads(action.text) for action in actions if isinstance(action, Send)]


def kinds(actions: list) -> list[type]:
    return [type(action) for action in actions]


def the_error(actions: list) -> dict:
    (message,) = sent(actions)
    assert message["type"] == "error"
    return message


def ticker_event(symbol: str = "BTCUSDT", price: str = "50000") -> dict:
    return protocol.market_event(messages.ticker(symbol, price), conflate=True)


def trade_event(symbol: str = "BTCUSDT", price: str = "50000", trade_id: int = 1, seq: int | None = None) -> dict:
    """A market trade event; a fixed trade id, so that two builds of one trade are equal."""
    event = protocol.market_event(messages.trade(symbol, price, trade_id=trade_id), conflate=False)
    return event if seq is None else {**event, "seq": seq, "epoch": EPOCH}


def order_message(order_id: int = 1) -> dict:
    return messages.order_update(order_id=order_id, timestamp=messages.EXCHANGE_TIME)


def order_event(order_id: int = 1) -> dict:
    """A trading event as the layer carries it without a history (no channel, seq or epoch)."""
    return protocol.user_event(order_message(order_id))


EPOCH = "e1"


def seq_text(seq: int, channel: str = "orders") -> str:
    """The encoded text of the `seq`-th event of a channel's history, as publish sends it."""
    message = order_message(seq) if channel == "orders" else messages.risk_alert(timestamp=messages.EXCHANGE_TIME)
    return protocol.encode({**message, "seq": seq})


def seq_event(seq: int, channel: str = "orders", epoch: str = EPOCH) -> dict:
    """A trading event with its history position, as realtime.publish.apublish_user sends it."""
    return {
        "type": protocol.USER_EVENT,
        "text": seq_text(seq, channel),
        "kind": "order_update" if channel == "orders" else "risk_alert",
        "channel": channel,
        "seq": seq,
        "epoch": epoch,
    }


def loaded_for(action: LoadPositions, seq: int = 0, epoch: str = EPOCH, missed=None) -> list[Loaded]:
    """What realtime.recovery.load answers when every history stands at `seq` (and `missed` followed since)."""
    return [Loaded(sub, epoch, seq, missed) for sub in action.subs]


def positions_of(actions: list) -> LoadPositions:
    (action,) = [a for a in actions if isinstance(a, LoadPositions)]
    return action


def subscribe_channels(s: Session, *channels: str, seq: int = 0) -> list:
    """Subscribe and answer the position load as the runner does (every history at `seq`): the ack and
    what follows it."""
    load = positions_of(request(s, "subscribe", channels=list(channels)))
    return s.positions_loaded(load, loaded_for(load, seq))


def subscribe_symbols(s: Session, stream: str, *symbols: str, seq: int = 0) -> list:
    """A market subscribe whose position load the runner answers (every stream at `seq`): the ack and
    what follows it."""
    load = positions_of(request(s, f"subscribe_{stream}", symbols=list(symbols)))
    return s.positions_loaded(load, loaded_for(load, seq))


def market_update(kind: str = "ticker", symbol: str = "BTCUSDT", seq: int = 1, epoch: str = EPOCH, price="1") -> dict:
    """A market event as realtime.publish.asend_market sends it: with its seq, epoch, symbol and group."""
    fixed = {"trade_id": seq} if kind == "trade" else {}  # two builds of one update are equal
    message = {"ticker": messages.ticker, "trade": messages.trade}[kind](symbol, price, **fixed)
    stream = protocol.STREAM_OF_MESSAGE_TYPE[kind]
    return {
        "type": protocol.MARKET_EVENT,
        "text": protocol.encode({**message, "seq": seq}),
        "key": protocol.conflation_key(kind, symbol) if stream in protocol.STATE_STREAMS else None,
        "kind": kind,
        "seq": seq,
        "epoch": epoch,
        "symbol": symbol,
        "group": groups.market(stream, symbol),
    }


def drained(s: Session) -> list[str]:
    """Everything the outbox holds, written to a socket that keeps up."""
    texts = []
    while (step := s.drain(0)) is not None:
        assert isinstance(step, Send)
        texts.append(step.text)
    return texts


# --- limits -------------------------------------------------------------------------------------


def test_limits_are_read_from_the_app_settings():
    app = SimpleNamespace(
        ws_rate_limit_per_second=3.5,
        ws_rate_limit_burst=7,
        ws_max_message_bytes=512,
        ws_max_items_per_request=9,
        ws_max_subscriptions_per_connection=11,
        ws_message_queue_size=13,
        ws_heartbeat_interval=17,
    )

    assert Limits.from_config(app) == Limits(
        rate_per_second=3.5,
        burst=7,
        max_message_bytes=512,
        max_items_per_request=9,
        max_subscriptions=11,
        queue_size=13,
        heartbeat_interval=17,
    )


# --- ping ---------------------------------------------------------------------------------------


def test_a_ping_is_answered_with_a_pong():
    actions = request(session(), "ping")

    assert kinds(actions) == [Send]
    assert sent(actions)[0]["type"] == "pong"
    assert actions[0].label == "pong"


def test_a_ping_is_answered_on_the_trading_endpoint_too():
    assert sent(request(trading(), "ping"))[0]["type"] == "pong"


# --- market streams -------------------------------------------------------------------------------


def test_a_subscribe_joins_each_group_in_order_loads_positions_then_counts():
    s = session()

    actions = request(s, "subscribe_ticker", symbols=["BTCUSDT", "ETHUSDT"])

    btc, eth = MarketSub(Stream.TICKER, "BTCUSDT"), MarketSub(Stream.TICKER, "ETHUSDT")
    load = actions[2]
    assert actions == [Join(btc), Join(eth), LoadPositions((btc, eth), load.request, ()), SubscriptionsChanged(2)]
    assert (load.request.stream, load.request.symbols) == (Stream.TICKER, ("BTCUSDT", "ETHUSDT"))
    assert s.subscriptions == {btc, eth}


def test_a_market_subscribe_acks_with_the_snapshot_positions_and_then_fetches_snapshots():
    s = session()
    load = positions_of(request(s, "subscribe_ticker", symbols=["BTCUSDT", "ETHUSDT"]))
    btc, eth = MarketSub(Stream.TICKER, "BTCUSDT"), MarketSub(Stream.TICKER, "ETHUSDT")

    actions = s.positions_loaded(load, [Loaded(btc, EPOCH, 7), Loaded(eth, EPOCH, 0)])

    assert kinds(actions) == [Send, FetchSnapshots]
    ack = orjson.loads(actions[0].text)
    assert (ack["type"], ack["stream"], ack["symbols"]) == ("subscribed", "ticker", ["BTCUSDT", "ETHUSDT"])
    assert ack["positions"] == {"BTCUSDT": {"epoch": EPOCH, "seq": 7}, "ETHUSDT": {"epoch": EPOCH, "seq": 0}}
    assert "recovered" not in ack
    assert actions[1] == FetchSnapshots((btc, eth))
    assert s.delivered == {btc: (EPOCH, 7), eth: (EPOCH, 0)}


def test_symbols_are_subscribed_in_upper_case_whatever_case_the_client_sends():
    s = session()

    request(s, "subscribe_orderbook", symbols=["ethusdt"])

    assert s.subscriptions == {MarketSub(Stream.ORDERBOOK, "ETHUSDT")}


def test_an_order_book_subscription_fetches_its_snapshot():
    actions = subscribe_symbols(session(), "orderbook", "BTCUSDT")

    assert actions[-1] == FetchSnapshots((MarketSub(Stream.ORDERBOOK, "BTCUSDT"),))


def test_a_trades_subscription_waits_for_its_history_position_and_has_no_snapshot_to_fetch():
    s = session()

    actions = request(s, "subscribe_trades", symbols=["BTCUSDT"])

    btc = MarketSub(Stream.TRADES, "BTCUSDT")
    assert actions == [Join(btc), LoadPositions((btc,), actions[1].request, ()), SubscriptionsChanged(1)]
    assert actions[1].request.stream is Stream.TRADES  # no ack before the position

    after = s.positions_loaded(actions[1], [Loaded(btc, EPOCH, 17)])

    assert kinds(after) == [Send]
    ack = sent(after)[0]
    assert (ack["type"], ack["stream"], ack["symbols"]) == ("subscribed", "trades", ["BTCUSDT"])
    assert ack["positions"] == {"BTCUSDT": {"epoch": EPOCH, "seq": 17}}
    assert "recovered" not in ack


@pytest.mark.parametrize("stream", [Stream.TICKER, Stream.ORDERBOOK])
def test_ticker_and_order_book_subscriptions_are_acked_only_with_the_snapshots_position(stream):
    s = session()
    actions = request(s, f"subscribe_{stream}", symbols=["BTCUSDT"])

    assert Send not in kinds(actions)  # no ack before the position
    load = positions_of(actions)
    assert load.subs == (MarketSub(stream, "BTCUSDT"),)
    assert load.then_snapshot == ()  # the snapshot comes from positions_loaded, after the ack

    after = s.positions_loaded(load, loaded_for(load, 12))

    ack = sent(after)[0]
    assert (ack["type"], ack["stream"]) == ("subscribed", str(stream))
    assert ack["positions"] == {"BTCUSDT": {"epoch": EPOCH, "seq": 12}}
    assert after[1:] == [FetchSnapshots((MarketSub(stream, "BTCUSDT"),))]


def test_a_repeat_subscribe_is_acked_at_once_with_its_position_and_sends_no_snapshot_again():
    s = session()
    subscribe_symbols(s, "ticker", "BTCUSDT", seq=4)
    s.event(market_update(seq=6), 0)  # the position moves with what is sent

    actions = request(s, "subscribe_ticker", symbols=["BTCUSDT"])

    assert kinds(actions) == [Send, SubscriptionsChanged]
    assert actions[1] == SubscriptionsChanged(1)
    ack = sent(actions)[0]
    assert ack["type"] == "subscribed"
    assert ack["positions"] == {"BTCUSDT": {"epoch": EPOCH, "seq": 6}}


def test_a_subscribe_that_adds_to_held_symbols_joins_loads_and_fetches_only_the_new_ones():
    s = session()
    subscribe_symbols(s, "ticker", "BTCUSDT", seq=4)

    actions = request(s, "subscribe_ticker", symbols=["BTCUSDT", "SOLUSDT"])

    sol = MarketSub(Stream.TICKER, "SOLUSDT")
    assert actions == [Join(sol), LoadPositions((sol,), actions[1].request, ()), SubscriptionsChanged(2)]

    after = s.positions_loaded(actions[1], [Loaded(sol, EPOCH, 9)])

    assert kinds(after) == [Send, FetchSnapshots]
    ack = sent(after)[0]
    assert ack["symbols"] == ["BTCUSDT", "SOLUSDT"]
    assert ack["positions"] == {"BTCUSDT": {"epoch": EPOCH, "seq": 4}, "SOLUSDT": {"epoch": EPOCH, "seq": 9}}
    assert after[1] == FetchSnapshots((sol,))


def test_the_same_symbol_on_two_streams_is_two_subscriptions():
    s = session()
    request(s, "subscribe_ticker", symbols=["BTCUSDT"])
    request(s, "subscribe_trades", symbols=["BTCUSDT"])

    assert s.subscriptions == {MarketSub(Stream.TICKER, "BTCUSDT"), MarketSub(Stream.TRADES, "BTCUSDT")}


def test_an_unknown_symbol_rejects_the_whole_request_and_changes_nothing():
    s = session()
    request(s, "subscribe_ticker", symbols=["ETHUSDT"])

    actions = request(s, "subscribe_ticker", symbols=["BTCUSDT", "DOGEUSDT"])

    error = the_error(actions)
    assert error["code"] == Code.INVALID_MESSAGE
    assert error["invalid"] == ["DOGEUSDT"]
    assert "DOGEUSDT" in error["message"]
    assert s.subscriptions == {MarketSub(Stream.TICKER, "ETHUSDT")}


def test_an_unsubscribe_naming_an_unknown_symbol_is_rejected_too_and_leaves_nothing():
    s = session()
    request(s, "subscribe_ticker", symbols=["BTCUSDT"])

    actions = request(s, "unsubscribe_ticker", symbols=["BTCUSDT", "DOGEUSDT"])

    assert the_error(actions)["invalid"] == ["DOGEUSDT"]
    assert s.subscriptions == {MarketSub(Stream.TICKER, "BTCUSDT")}


def test_subscriptions_up_to_the_cap_are_accepted():
    s = session(max_subscriptions=3)

    actions = request(s, "subscribe_ticker", symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"])

    assert SubscriptionsChanged(3) in actions
    assert len(s.subscriptions) == 3


def test_a_subscribe_past_the_cap_is_refused_whole_and_changes_nothing():
    s = session(max_subscriptions=3)
    request(s, "subscribe_ticker", symbols=["BTCUSDT", "ETHUSDT"])
    before = set(s.subscriptions)

    actions = request(s, "subscribe_trades", symbols=["BTCUSDT", "ETHUSDT"])

    error = the_error(actions)
    assert error["code"] == Code.INVALID_MESSAGE
    assert "at most 3" in error["message"]
    assert kinds(actions) == [Send]
    assert s.subscriptions == before


def test_a_repeat_subscribe_at_the_cap_is_not_counted_again():
    s = session(max_subscriptions=2)
    subscribe_symbols(s, "ticker", "BTCUSDT", "ETHUSDT")

    actions = request(s, "subscribe_ticker", symbols=["ETHUSDT", "BTCUSDT"])

    assert sent(actions)[0]["type"] == "subscribed"
    assert actions[-1] == SubscriptionsChanged(2)


def test_a_repeat_subscribe_at_the_cap_whose_load_failed_is_loaded_again_not_refused():
    s = session(max_subscriptions=2)
    request(s, "subscribe_ticker", symbols=["BTCUSDT", "ETHUSDT"])  # LoadPositions raised in the runner
    s.internal_error()

    actions = request(s, "subscribe_ticker", symbols=["ETHUSDT", "BTCUSDT"])

    eth, btc = MarketSub(Stream.TICKER, "ETHUSDT"), MarketSub(Stream.TICKER, "BTCUSDT")
    assert Join not in kinds(actions)
    assert actions == [LoadPositions((eth, btc), actions[0].request, ()), SubscriptionsChanged(2)]


def test_an_unsubscribe_leaves_each_held_group_in_order_and_acks():
    s = session()
    request(s, "subscribe_trades", symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"])

    actions = request(s, "unsubscribe_trades", symbols=["SOLUSDT", "BTCUSDT"])

    sol, btc = MarketSub(Stream.TRADES, "SOLUSDT"), MarketSub(Stream.TRADES, "BTCUSDT")
    assert actions[:2] == [Leave(sol), Leave(btc)]
    assert kinds(actions[2:]) == [Send, SubscriptionsChanged]  # the count after the ack
    assert actions[3] == SubscriptionsChanged(1)
    ack = sent(actions)[0]
    assert (ack["type"], ack["stream"], ack["symbols"]) == ("unsubscribed", "trades", ["SOLUSDT", "BTCUSDT"])
    assert s.subscriptions == {MarketSub(Stream.TRADES, "ETHUSDT")}


def test_an_unsubscribe_of_what_is_not_held_leaves_nothing_but_is_acked():
    s = session()
    request(s, "subscribe_ticker", symbols=["BTCUSDT"])

    actions = request(s, "unsubscribe_orderbook", symbols=["BTCUSDT"])

    assert kinds(actions) == [Send, SubscriptionsChanged]
    assert actions[1] == SubscriptionsChanged(1)
    assert sent(actions)[0]["type"] == "unsubscribed"
    assert s.subscriptions == {MarketSub(Stream.TICKER, "BTCUSDT")}


def test_a_symbol_can_be_subscribed_again_after_an_unsubscribe_and_gets_a_fresh_snapshot():
    s = session()
    subscribe_symbols(s, "ticker", "BTCUSDT", seq=4)
    request(s, "unsubscribe_ticker", symbols=["BTCUSDT"])
    assert s.delivered == {}  # the position of what was left is forgotten

    actions = subscribe_symbols(s, "ticker", "BTCUSDT", seq=8)

    assert sent(actions)[0]["positions"] == {"BTCUSDT": {"epoch": EPOCH, "seq": 8}}
    assert actions[-1] == FetchSnapshots((MarketSub(Stream.TICKER, "BTCUSDT"),))


# --- trading channels -----------------------------------------------------------------------------


def test_a_channel_subscribe_joins_then_loads_positions_before_any_ack():
    s = trading()

    actions = request(s, "subscribe", channels=["orders", "risk_alerts", "portfolio"])

    orders, alerts, portfolio = UserSub("orders"), UserSub("risk_alerts"), UserSub("portfolio")
    assert actions[:3] == [Join(orders), Join(alerts), Join(portfolio)]
    load = actions[3]
    assert actions[3:] == [LoadPositions((orders, alerts, portfolio), load.request, ()), SubscriptionsChanged(3)]
    assert load.request.channels == ("orders", "risk_alerts", "portfolio")
    assert s.subscriptions == {orders, alerts, portfolio}


def test_the_channel_ack_carries_every_position_then_snapshots_of_stateful_channels_only():
    s = trading()
    load = positions_of(request(s, "subscribe", channels=["orders", "risk_alerts", "portfolio"]))

    actions = s.positions_loaded(
        load,
        [
            Loaded(UserSub("orders"), "eo", 5),
            Loaded(UserSub("risk_alerts"), "er", 0),
            Loaded(UserSub("portfolio"), "ep", 9),
        ],
    )

    assert kinds(actions) == [Send, FetchSnapshots]
    ack = sent(actions)[0]
    assert (ack["type"], ack["channels"]) == ("subscribed", ["orders", "risk_alerts", "portfolio"])
    assert ack["positions"] == {
        "orders": {"epoch": "eo", "seq": 5},
        "risk_alerts": {"epoch": "er", "seq": 0},
        "portfolio": {"epoch": "ep", "seq": 9},
    }
    assert "recovered" not in ack
    assert actions[0].label == "subscribed"
    assert actions[1] == FetchSnapshots((UserSub("orders"), UserSub("portfolio")))


def test_risk_alerts_alone_have_no_snapshot_to_fetch():
    actions = subscribe_channels(trading(), "risk_alerts")

    assert kinds(actions) == [Send]
    assert sent(actions)[0]["positions"] == {"risk_alerts": {"epoch": EPOCH, "seq": 0}}


def test_a_repeat_channel_subscribe_is_acked_at_once_with_its_position_and_sends_no_snapshot_again():
    s = trading()
    subscribe_channels(s, "bot_status", seq=2)

    actions = request(s, "subscribe", channels=["bot_status"])

    assert kinds(actions) == [Send, SubscriptionsChanged]
    assert sent(actions)[0]["positions"] == {"bot_status": {"epoch": EPOCH, "seq": 2}}


def test_a_channel_subscribe_adding_to_a_held_channel_acks_both_positions():
    s = trading()
    subscribe_channels(s, "orders", seq=5)

    load = positions_of(request(s, "subscribe", channels=["orders", "portfolio"]))

    assert load.subs == (UserSub("portfolio"),)
    actions = s.positions_loaded(load, [Loaded(UserSub("portfolio"), "ep", 1)])
    assert sent(actions)[0]["positions"] == {
        "orders": {"epoch": EPOCH, "seq": 5},
        "portfolio": {"epoch": "ep", "seq": 1},
    }
    assert actions[1:] == [FetchSnapshots((UserSub("portfolio"),))]  # not the held one again


def test_a_channel_unsubscribe_leaves_the_group_and_acks():
    s = trading()
    subscribe_channels(s, "orders", "portfolio")

    actions = request(s, "unsubscribe", channels=["orders"])

    assert kinds(actions) == [Leave, Send, SubscriptionsChanged]
    assert (actions[0], actions[2]) == (Leave(UserSub("orders")), SubscriptionsChanged(1))
    ack = sent(actions)[0]
    assert (ack["type"], ack["channels"]) == ("unsubscribed", ["orders"])
    assert s.subscriptions == {UserSub("portfolio")}
    assert set(s.delivered) == {UserSub("portfolio")}  # the position of what was left is forgotten


def test_channels_are_refused_on_the_market_endpoint():
    s = session(Endpoint.MARKET)

    actions = request(s, "subscribe", channels=["orders"])

    assert the_error(actions)["code"] == Code.INVALID_MESSAGE
    assert s.subscriptions == set()


def test_channels_are_refused_on_a_trading_session_without_a_user():
    s = session(Endpoint.TRADING, user_id=None)

    actions = request(s, "subscribe", channels=["orders"])

    error = the_error(actions)
    assert error["code"] == Code.INVALID_MESSAGE
    assert "'subscribe'" in error["message"]
    assert s.subscriptions == set()


def test_subscribe_symbol_on_the_trading_endpoint_is_a_ticker_subscription_acked_without_a_stream():
    s = trading()

    actions = request(s, "subscribe_symbol", symbols=["BTCUSDT"])

    assert Join(MarketSub(Stream.TICKER, "BTCUSDT")) in actions
    after = s.positions_loaded(positions_of(actions), [Loaded(MarketSub(Stream.TICKER, "BTCUSDT"), EPOCH, 3)])
    ack = sent(after)[0]
    assert ack["symbols"] == ["BTCUSDT"]
    assert ack["positions"] == {"BTCUSDT": {"epoch": EPOCH, "seq": 3}}
    assert "stream" not in ack
    assert after[-1] == FetchSnapshots((MarketSub(Stream.TICKER, "BTCUSDT"),))


def test_channels_and_symbols_share_one_subscription_cap():
    s = trading(max_subscriptions=2)
    subscribe_channels(s, "orders")
    request(s, "subscribe_symbol", symbols=["BTCUSDT"])

    actions = request(s, "subscribe", channels=["portfolio"])

    assert "at most 2" in the_error(actions)["message"]
    assert s.subscriptions == {UserSub("orders"), MarketSub(Stream.TICKER, "BTCUSDT")}


# --- malformed frames -----------------------------------------------------------------------------

MALFORMED = {
    "bad JSON": "{not json",
    "empty text": "",
    "a JSON array": "[]",
    "a JSON string": '"ping"',
    "no type": '{"symbols": ["BTCUSDT"]}',
    "a number as type": '{"type": 5}',
    "an unknown type": '{"type": "subscribe_klines", "symbols": ["BTCUSDT"]}',
    "a trading request on the market endpoint": '{"type": "subscribe_symbol", "symbols": ["BTCUSDT"]}',
    "symbols as a string": '{"type": "subscribe_ticker", "symbols": "BTCUSDT"}',
    "an empty symbol list": '{"type": "subscribe_ticker", "symbols": []}',
    "no symbol list": '{"type": "subscribe_ticker"}',
    "a number among the symbols": '{"type": "subscribe_ticker", "symbols": ["BTCUSDT", 1]}',
    "a malformed symbol": '{"type": "subscribe_ticker", "symbols": ["BTC/USDT"]}',
    "more symbols than a request may list": orjson.dumps(
        {"type": "subscribe_ticker", "symbols": [f"S{n}USDT" for n in range(11)]}
    ).decode(),
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=list(MALFORMED))
def test_a_malformed_frame_gets_a_4004_error_and_changes_nothing(text):
    s = session()
    request(s, "subscribe_ticker", symbols=["BTCUSDT"])

    actions = s.receive(text, START, ENABLED)

    assert kinds(actions) == [Send]
    assert the_error(actions)["code"] == Code.INVALID_MESSAGE
    assert s.subscriptions == {MarketSub(Stream.TICKER, "BTCUSDT")}
    assert not s.closed


@pytest.mark.parametrize(
    "text",
    ['{"type": "subscribe", "channels": ["orders", "fills"]}', '{"type": "subscribe", "channels": [["orders"]]}'],
    ids=["an unknown channel", "a list among the channels"],
)
def test_a_malformed_channel_request_gets_a_4004_error_and_changes_nothing(text):
    s = trading()

    actions = s.receive(text, START, ENABLED)

    assert the_error(actions)["code"] == Code.INVALID_MESSAGE
    assert s.subscriptions == set()


def test_a_binary_frame_gets_a_4004_error():
    s = session()

    error = the_error(s.receive(None, START, ENABLED))

    assert error["code"] == Code.INVALID_MESSAGE
    assert "Binary" in error["message"]
    assert not s.closed


def padded_ping(length: int, pad: str = "x") -> str:
    """A ping frame of exactly `length` characters, padded with `pad`."""
    empty = frame("ping", pad="")
    return frame("ping", pad=pad * (length - len(empty)))


def test_a_frame_of_exactly_the_size_limit_is_accepted():
    text = padded_ping(64)
    assert len(text.encode()) == 64

    assert sent(session(max_message_bytes=64).receive(text, START, ENABLED))[0]["type"] == "pong"


def test_a_frame_one_byte_over_the_size_limit_gets_a_4004_error():
    error = the_error(session(max_message_bytes=64).receive(padded_ping(65), START, ENABLED))

    assert error["code"] == Code.INVALID_MESSAGE
    assert "at most 64 bytes" in error["message"]


def test_the_size_limit_counts_bytes_not_characters():
    text = padded_ping(50, pad="€")  # 50 characters, but each euro sign is three bytes in UTF-8
    assert len(text) <= 64 < len(text.encode())

    error = the_error(session(max_message_bytes=64).receive(text, START, ENABLED))

    assert "Message too large" in error["message"]


def test_an_oversized_subscribe_changes_nothing():
    s = session(max_message_bytes=64)
    text = frame("subscribe_ticker", symbols=["BTCUSDT"], pad="x" * 64)

    actions = s.receive(text, START, ENABLED)

    assert kinds(actions) == [Send]
    assert s.subscriptions == set()


# --- floods ---------------------------------------------------------------------------------------


def test_messages_over_the_rate_are_refused_with_a_4029_error_and_change_nothing():
    s = session(rate_per_second=1.0, burst=1)
    request(s, "ping")

    actions = request(s, "subscribe_ticker", symbols=["BTCUSDT"])

    error = the_error(actions)
    assert error["code"] == Code.RATE_LIMITED
    assert "ignored" in error["message"]
    assert s.subscriptions == set()
    assert not s.closed


def test_a_client_that_keeps_flooding_is_closed_with_4029_after_an_error_frame():
    s = session(rate_per_second=1.0, burst=1)
    request(s, "ping")
    refusals = [request(s, "ping") for _ in range(9)]
    assert all(the_error(actions)["code"] == Code.RATE_LIMITED for actions in refusals)

    actions = request(s, "ping")

    assert kinds(actions) == [Send, Close]
    assert the_error(actions[:1])["code"] == Code.RATE_LIMITED
    assert actions[1].code == Code.RATE_LIMITED
    assert s.closed
    assert request(s, "ping") == []


def test_a_client_that_slows_down_is_served_again():
    s = session(rate_per_second=1.0, burst=1)
    request(s, "ping")
    assert the_error(request(s, "ping"))["code"] == Code.RATE_LIMITED

    assert sent(request(s, "ping", at=START + 1.0))[0]["type"] == "pong"


# --- delivering events ----------------------------------------------------------------------------


def test_an_event_is_sent_at_once_while_the_client_keeps_up():
    event = ticker_event()

    actions = session().event(event, backlog=0)

    assert actions == [Send(event["text"], "ticker")]


def test_an_event_is_sent_at_once_just_below_the_high_water_mark():
    assert kinds(session().event(trade_event(), backlog=SLOW - 1)) == [Send]


def test_an_event_for_a_slow_client_is_queued_and_one_drain_is_asked_for():
    s = session()

    first = s.event(ticker_event("BTCUSDT"), backlog=SLOW)
    second = s.event(ticker_event("ETHUSDT"), backlog=SLOW)

    assert first == [Drain()]
    assert second == []
    assert len(s.outbox) == 2


def test_while_anything_is_queued_new_events_queue_behind_it_even_when_the_socket_is_free():
    s = session()
    s.event(order_event(1), backlog=SLOW)

    assert s.event(order_event(2), backlog=0) == []
    assert drained(s) == [order_event(1)["text"], order_event(2)["text"]]


def test_drain_writes_the_queue_in_order_then_says_it_is_done():
    s = session()
    s.event(trade_event(price="1"), backlog=SLOW)
    s.event(trade_event(price="2"), backlog=SLOW)

    first, second = s.drain(0), s.drain(0)

    assert (first.text, first.label) == (trade_event(price="1")["text"], "queued")
    assert second.text == trade_event(price="2")["text"]
    assert s.drain(0) is None


def test_drain_waits_while_the_socket_is_above_the_low_water_mark():
    s = session()
    s.event(trade_event(), backlog=SLOW)

    assert s.drain(flow.LOW_WATER + 1) == DRAIN_POLL_SECONDS
    assert isinstance(s.drain(flow.LOW_WATER), Send)


def test_after_a_drain_finished_the_next_slow_event_asks_for_a_new_drain():
    s = session()
    s.event(trade_event(), backlog=SLOW)
    drained(s)

    assert kinds(s.event(trade_event(), backlog=0)) == [Send]
    assert s.event(trade_event(), backlog=SLOW) == [Drain()]


def test_a_queued_price_is_replaced_by_a_newer_price_of_the_same_symbol():
    s = session()
    s.event(ticker_event("BTCUSDT", "1"), backlog=SLOW)
    s.event(ticker_event("ETHUSDT", "5"), backlog=SLOW)
    s.event(ticker_event("BTCUSDT", "2"), backlog=SLOW)

    assert drained(s) == [ticker_event("BTCUSDT", "2")["text"], ticker_event("ETHUSDT", "5")["text"]]
    assert s.outbox.conflated == 1


def test_queued_prices_never_close_the_connection_however_many_arrive():
    s = session(queue_size=2)

    for n in range(50):
        s.event(ticker_event("BTCUSDT", str(n)), backlog=SLOW)

    assert not s.closed
    assert drained(s) == [ticker_event("BTCUSDT", "49")["text"]]


def test_trades_past_the_queue_size_drop_the_oldest_and_keep_the_connection():
    s = session(queue_size=2)

    actions = [s.event(trade_event(price=str(n)), backlog=SLOW) for n in range(3)]

    assert actions == [[Drain()], [], []]
    assert not s.closed
    assert s.outbox.dropped == 1
    assert drained(s) == [trade_event(price="1")["text"], trade_event(price="2")["text"]]


def test_trading_events_past_the_queue_size_close_the_connection_with_4008_and_release_the_queue():
    s = trading(queue_size=2)
    s.event(order_event(1), backlog=SLOW)
    s.event(order_event(2), backlog=SLOW)

    actions = s.event(order_event(3), backlog=SLOW)

    assert kinds(actions) == [Close]
    assert actions[0].code == Code.SLOW_CONSUMER
    assert s.closed
    assert len(s.outbox) == 0
    assert s.drain(0) is None


def test_nothing_is_delivered_after_a_slow_consumer_close():
    s = trading(queue_size=1)
    s.event(order_event(1), backlog=SLOW)
    s.event(order_event(2), backlog=SLOW)

    assert s.event(order_event(3), backlog=0) == []
    assert request(s, "ping") == []


def test_a_trading_event_is_labelled_with_its_message_type():
    event = order_event()

    assert trading().event(event, backlog=0) == [Send(event["text"], "order_update")]


def test_an_event_without_a_kind_is_labelled_by_its_layer():
    user = {"type": protocol.USER_EVENT, "text": "{}"}
    market = {"type": protocol.MARKET_EVENT, "text": "{}", "key": None}

    assert trading().event(user, backlog=0)[0].label == "user"
    assert session().event(market, backlog=0)[0].label == "market"


def test_a_trading_event_is_never_dropped_for_a_newer_one():
    s = trading(queue_size=3)
    for n in (1, 2, 3):
        s.event(order_event(n), backlog=SLOW)

    assert drained(s) == [order_event(n)["text"] for n in (1, 2, 3)]


def test_a_market_event_without_a_key_is_droppable_even_when_it_is_not_a_trade():
    s = session(queue_size=1)
    texts = [orjson.dumps({"type": "trade", "n": n}).decode() for n in range(3)]
    for text in texts:
        s.event({"type": protocol.MARKET_EVENT, "text": text, "key": None, "kind": "trade"}, backlog=SLOW)

    assert drained(s) == texts[-1:]
    assert not s.closed


def test_replies_queue_behind_events_so_the_client_sees_them_in_order():
    s = session()
    s.event(trade_event(), backlog=SLOW)

    assert request(s, "ping") == []
    queued = drained(s)
    assert orjson.loads(queued[1])["type"] == "pong"


# --- snapshots ------------------------------------------------------------------------------------


def test_a_market_snapshot_is_sent_to_a_subscriber():
    s = session()
    request(s, "subscribe_ticker", symbols=["BTCUSDT"])
    text = ticker_event()["text"]

    assert s.snapshot(MarketSub(Stream.TICKER, "BTCUSDT"), [text]) == [Send(text, "snapshot")]


def test_a_snapshot_after_the_client_left_the_subscription_sends_nothing():
    s = session()
    request(s, "subscribe_ticker", symbols=["BTCUSDT"])
    request(s, "unsubscribe_ticker", symbols=["BTCUSDT"])

    assert s.snapshot(MarketSub(Stream.TICKER, "BTCUSDT"), [ticker_event()["text"]]) == []


def test_a_channel_snapshot_of_several_messages_is_sent_in_order():
    s = trading()
    subscribe_channels(s, "orders")
    texts = [order_event(1)["text"], order_event(2)["text"]]

    actions = s.snapshot(UserSub("orders"), texts)

    assert actions == [Send(texts[0], "snapshot"), Send(texts[1], "snapshot")]


def test_a_queued_market_snapshot_is_replaced_by_a_newer_live_price():
    s = session()
    request(s, "subscribe_ticker", symbols=["BTCUSDT"])
    s.snapshot(MarketSub(Stream.TICKER, "BTCUSDT"), [ticker_event(price="1")["text"]], backlog=SLOW)

    s.event(ticker_event(price="2"), backlog=SLOW)

    assert drained(s) == [ticker_event(price="2")["text"]]


def test_a_queued_channel_snapshot_is_kept_whole_before_the_events_after_it():
    s = trading()
    subscribe_channels(s, "orders")
    snapshot = [order_event(1)["text"], order_event(2)["text"]]

    assert s.snapshot(UserSub("orders"), snapshot, backlog=SLOW) == [Drain()]
    s.event(order_event(3), backlog=0)

    assert drained(s) == [*snapshot, order_event(3)["text"]]


# --- closing --------------------------------------------------------------------------------------


def test_close_sends_an_error_frame_then_closes_with_the_same_code():
    s = session()

    actions = s.close(Code.AUTH_FAILED, "Token expired")

    assert kinds(actions) == [Send, Close]
    error = sent(actions)[0]
    assert (error["code"], error["message"]) == (Code.AUTH_FAILED, "Token expired")
    assert actions[0].label == "error"
    assert actions[1] == Close(Code.AUTH_FAILED, "Token expired")
    assert s.closed


def test_close_happens_once():
    s = session()
    s.close(Code.AUTH_FAILED, "Token expired")

    assert s.close(Code.RATE_LIMITED, "again") == []


def test_the_close_reason_is_cut_to_what_a_close_frame_holds_but_the_error_frame_says_it_all():
    message = "x" * 300

    actions = session().close(Code.TOO_MANY_CONNECTIONS, message)

    assert sent(actions)[0]["message"] == message
    assert actions[1].reason == message[:120]


def test_the_close_frame_goes_out_at_once_even_with_a_queue():
    s = session()
    s.event(trade_event(), backlog=SLOW)

    assert kinds(s.close(Code.AUTH_FAILED, "bye")) == [Send, Close]


def test_nothing_is_done_after_close():
    s = trading()
    subscribe_channels(s, "orders")
    s.event(order_event(1), backlog=SLOW)
    s.close(Code.AUTH_FAILED, "bye")

    assert request(s, "ping") == []
    assert s.event(order_event(2), backlog=0) == []
    assert s.snapshot(UserSub("orders"), [order_event(3)["text"]]) == []
    assert s.tick(START + 3600, WALL + 3600) == []
    assert s.drain(0) is None


def test_end_leaves_every_group_and_forgets_the_subscriptions():
    s = trading()
    subscribe_channels(s, "orders", "portfolio")
    request(s, "subscribe_symbol", symbols=["BTCUSDT"])
    held = set(s.subscriptions)

    actions = s.end()

    assert kinds(actions) == [Leave] * len(actions)
    subscriptions_left = [a.sub for a in actions if isinstance(a.sub, MarketSub | UserSub)]
    assert len(subscriptions_left) == 3  # each once (a user's session may also leave groups of its own)
    assert set(subscriptions_left) == held
    assert s.subscriptions == set()
    assert s.closed


def test_end_after_a_close_still_leaves_every_group():
    s = session()
    request(s, "subscribe_ticker", symbols=["BTCUSDT"])
    s.close(Code.RATE_LIMITED, "bye")

    assert s.end() == [Leave(MarketSub(Stream.TICKER, "BTCUSDT"))]


def test_end_without_subscriptions_does_nothing():
    assert session().end() == []


def test_an_internal_error_is_reported_with_4500_and_keeps_the_connection():
    s = session()

    error = the_error(s.internal_error())

    assert error["code"] == Code.INTERNAL
    assert "retry" in error["message"]
    assert not s.closed


# --- a restart (graceful drain) -------------------------------------------------------------------


def restart_event() -> dict:
    return {"type": protocol.RESTART_EVENT}


def orders_event(seq: int) -> dict:
    """A trading event on the orders channel as the layer carries it (the session never parses its text)."""
    text = orjson.dumps({"type": "order_update", "order_id": str(seq), "seq": seq}).decode()
    return {"type": protocol.USER_EVENT, "text": text, "kind": "order_update", "channel": "orders", "seq": seq}


def test_a_restart_sends_an_error_frame_with_1012_then_closes_with_1012():
    s = trading()
    request(s, "subscribe", channels=["orders"])

    actions = s.restart()

    assert kinds(actions) == [Send, Close]
    error = sent(actions)[0]
    assert error["code"] == Code.SERVICE_RESTART == 1012
    assert "reconnect" in error["message"]
    assert actions[1] == Close(1012, error["message"])
    assert s.closed


def test_the_restart_event_from_the_drain_closes_with_1012_like_a_restart():
    s = trading()

    actions = s.event(restart_event(), backlog=0)

    assert kinds(actions) == [Send, Close]
    assert sent(actions)[0]["code"] == 1012 and actions[1].code == 1012


def test_a_restart_closes_at_once_even_with_trading_events_queued():
    """What is queued is not written: the client resumes with `since` on another instance."""
    s = trading()
    request(s, "subscribe", channels=["orders"])
    for seq in (1, 2):
        s.event(orders_event(seq), backlog=SLOW)

    actions = s.restart()

    assert kinds(actions) == [Send, Close]
    assert sent(actions)[0]["code"] == 1012
    assert s.drain(0) is None


def test_a_restart_in_a_batch_of_events_closes_after_the_events_before_it_and_drops_those_after():
    s = trading()
    request(s, "subscribe", channels=["orders"])
    s.batch = True

    actions = s.events([orders_event(1), restart_event(), orders_event(2)], backlog=0)

    assert kinds(actions) == [Send, Close]
    frame = orjson.loads(actions[0].text)
    assert [message["type"] for message in frame] == ["order_update", "error"]
    assert frame[1]["code"] == 1012 and actions[1].code == 1012


def test_a_restart_after_a_close_does_nothing():
    s = session()
    s.close(Code.RATE_LIMITED, "bye")

    assert s.restart() == []
    assert s.event(restart_event(), backlog=0) == []


# --- the clock ------------------------------------------------------------------------------------


def test_nothing_is_due_before_the_heartbeat_interval():
    s = session(heartbeat_interval=30.0)

    assert s.tick(START + 29.9, WALL) == []
    assert s.next_deadline(START + 10, WALL) == pytest.approx(20.0)


def test_a_heartbeat_is_sent_after_a_silence_of_the_interval():
    s = session(heartbeat_interval=30.0)

    actions = s.tick(START + 30.0, WALL)

    assert kinds(actions) == [Send]
    assert sent(actions)[0]["type"] == "heartbeat"


def test_a_frame_written_restarts_the_silence_timer():
    s = session(heartbeat_interval=30.0)

    s.sent(START + 20.0)

    assert s.tick(START + 30.0, WALL) == []
    assert s.next_deadline(START + 30.0, WALL) == pytest.approx(20.0)
    assert kinds(s.tick(START + 50.0, WALL)) == [Send]


def test_the_deadline_is_now_once_a_heartbeat_is_overdue():
    assert session(heartbeat_interval=30.0).next_deadline(START + 45.0, WALL) == 0.0


def test_the_deadline_is_the_token_expiry_when_that_comes_first():
    s = trading(heartbeat_interval=30.0)
    s.expires_at = WALL + 12.0

    assert s.next_deadline(START, WALL) == pytest.approx(12.0)
    assert s.next_deadline(START, WALL + 20.0) == 0.0


def test_the_deadline_is_the_heartbeat_when_the_token_expires_later():
    s = trading(heartbeat_interval=30.0)
    s.expires_at = WALL + 3600.0

    assert s.next_deadline(START, WALL) == pytest.approx(30.0)


def test_an_expired_token_closes_the_connection_with_4001():
    s = session(Endpoint.TRADING, user_id=USER_ID, expires_at=WALL + 60.0)

    assert s.tick(START + 1.0, WALL + 59.0) == []
    actions = s.tick(START + 2.0, WALL + 60.0)

    assert kinds(actions) == [Send, Close]
    assert the_error(actions[:1])["code"] == Code.AUTH_FAILED
    assert actions[1].code == Code.AUTH_FAILED
    assert s.closed


def test_token_expiry_wins_over_a_due_heartbeat():
    s = session(Endpoint.TRADING, user_id=USER_ID, expires_at=WALL, heartbeat_interval=30.0)

    actions = s.tick(START + 30.0, WALL)

    assert [a.code for a in actions if isinstance(a, Close)] == [Code.AUTH_FAILED]
    assert "heartbeat" not in [m["type"] for m in sent(actions)]


def test_no_heartbeat_is_queued_behind_waiting_frames_and_the_deadline_moves_on():
    s = session(heartbeat_interval=30.0)
    s.event(ticker_event(), backlog=SLOW)  # the client stopped reading: the ticker waits
    overdue = START + 30.0

    assert s.tick(overdue, WALL) == []  # what waits will break the silence

    assert s.next_deadline(overdue, WALL) > 0
    assert len(s.outbox) == 1


def test_a_market_only_client_that_stops_reading_is_not_closed_by_its_own_heartbeats():
    s = session(queue_size=3, heartbeat_interval=30.0)
    s.event(ticker_event(), backlog=SLOW)
    overdue = START + 30.0

    actions = []
    for _ in range(10):  # the adapter's keepalive loop: wait next_deadline(), then tick()
        if s.next_deadline(overdue, WALL) > 0:
            break
        actions += s.tick(overdue, WALL)

    assert Close not in kinds(actions)
    assert not s.closed


# --- resuming: the ack's positions and what the client missed ------------------------------------


def carry_out(s: Session, actions: list, history: dict[int, str] | None = None) -> list[dict]:
    """The runner's part for these tests: the messages written, in order (array frames split), with
    each gap filled from `history` (seq -> text) all or nothing, as realtime.recovery.gap reads it."""
    out: list[dict] = []
    for action in actions:
        if isinstance(action, Send):
            value = orjson.loads(action.text)
            out += value if isinstance(value, list) else [value]
        elif isinstance(action, FillGap):
            wanted = range(action.after + 1, action.up_to + 1)
            texts = [history[n] for n in wanted] if all(n in (history or {}) for n in wanted) else []
            out += carry_out(s, s.gap_filled(action, texts), history)
    return out


def seqs(messages_out: list[dict]) -> list[int | None]:
    return [message.get("seq") for message in messages_out]


def resume(s: Session, channels: list[str], since: dict) -> LoadPositions:
    return positions_of(request(s, "subscribe", channels=channels, since=since))


def test_a_served_since_is_acked_recovered_and_followed_by_the_missed_events_in_order_once():
    s = trading()
    load = resume(s, ["orders"], {"orders": {"epoch": EPOCH, "seq": 3}})
    missed = [seq_text(4), seq_text(5), seq_text(6)]

    actions = s.positions_loaded(load, [Loaded(UserSub("orders"), EPOCH, 6, missed)])

    assert kinds(actions) == [Send, Send, Send, Send]  # no snapshot: the client's state is whole again
    ack = sent(actions)[0]
    assert ack["positions"] == {"orders": {"epoch": EPOCH, "seq": 6}}
    assert ack["recovered"] == {"orders": True}
    assert [a.text for a in actions[1:]] == missed
    assert [a.label for a in actions[1:]] == ["recovered"] * 3
    assert s.event(seq_event(6), 0) == []  # was waiting in the inbox: already replayed
    assert s.event(seq_event(5), 0) == []
    assert s.event(seq_event(7), 0) == [Send(seq_text(7), "order_update")]


def test_a_since_with_nothing_missed_is_recovered_with_nothing_replayed():
    s = trading()
    load = resume(s, ["orders"], {"orders": {"epoch": EPOCH, "seq": 6}})

    actions = s.positions_loaded(load, [Loaded(UserSub("orders"), EPOCH, 6, [])])

    assert kinds(actions) == [Send]
    assert sent(actions)[0]["recovered"] == {"orders": True}


def test_a_since_that_cannot_be_served_is_acked_not_recovered_and_the_snapshot_is_fetched():
    s = trading()
    load = resume(s, ["orders"], {"orders": {"epoch": "lost", "seq": 3}})

    actions = s.positions_loaded(load, [Loaded(UserSub("orders"), "new", 2)])  # missed None: the history's now

    assert kinds(actions) == [Send, FetchSnapshots]
    ack = sent(actions)[0]
    assert ack["recovered"] == {"orders": False}
    assert ack["positions"] == {"orders": {"epoch": "new", "seq": 2}}
    assert actions[1] == FetchSnapshots((UserSub("orders"),))
    assert s.delivered[UserSub("orders")] == ("new", 2)


def test_recovered_names_only_the_channels_given_a_since():
    s = trading()
    load = resume(s, ["orders", "risk_alerts", "bot_status"], {"risk_alerts": {"epoch": EPOCH, "seq": 1}})
    alert = seq_text(2, "risk_alerts")

    actions = s.positions_loaded(
        load,
        [
            Loaded(UserSub("orders"), EPOCH, 4),
            Loaded(UserSub("risk_alerts"), EPOCH, 2, [alert]),
            Loaded(UserSub("bot_status"), EPOCH, 0),
        ],
    )

    ack = sent(actions)[0]
    assert ack["recovered"] == {"risk_alerts": True}
    assert set(ack["positions"]) == {"orders", "risk_alerts", "bot_status"}
    assert actions[1] == Send(alert, "recovered")
    assert actions[2:] == [FetchSnapshots((UserSub("orders"), UserSub("bot_status")))]


def test_an_unrecoverable_channel_without_a_snapshot_fetches_nothing():
    s = trading()
    load = resume(s, ["risk_alerts"], {"risk_alerts": {"epoch": "lost", "seq": 9}})

    actions = s.positions_loaded(load, [Loaded(UserSub("risk_alerts"), "new", 0)])

    assert kinds(actions) == [Send]
    assert sent(actions)[0]["recovered"] == {"risk_alerts": False}


def test_then_snapshot_is_fetched_with_the_unrecovered_ones_after_the_ack():
    s = trading()
    request(s, "subscribe_symbol", symbols=["BTCUSDT"])
    ticker = MarketSub(Stream.TICKER, "BTCUSDT")
    load = positions_of(request(s, "subscribe", channels=["orders"]))
    load = LoadPositions(load.subs, load.request, (ticker,))  # a request mixing both kinds

    actions = s.positions_loaded(load, [Loaded(UserSub("orders"), EPOCH, 0)])

    assert kinds(actions) == [Send, FetchSnapshots]
    assert actions[1] == FetchSnapshots((ticker, UserSub("orders")))


def test_then_snapshot_alone_is_fetched_when_every_history_was_recovered():
    s = trading()
    ticker = MarketSub(Stream.TICKER, "BTCUSDT")
    load = resume(s, ["orders"], {"orders": {"epoch": EPOCH, "seq": 0}})
    load = LoadPositions(load.subs, load.request, (ticker,))

    actions = s.positions_loaded(load, [Loaded(UserSub("orders"), EPOCH, 0, [])])

    assert actions[-1] == FetchSnapshots((ticker,))


def test_trades_resumed_with_since_replay_the_missed_trades_keyed_by_symbol():
    s = session()
    load = positions_of(
        request(s, "subscribe_trades", symbols=["BTCUSDT", "ETHUSDT"], since={"BTCUSDT": {"epoch": "t", "seq": 10}})
    )
    btc, eth = MarketSub(Stream.TRADES, "BTCUSDT"), MarketSub(Stream.TRADES, "ETHUSDT")
    missed = [trade_event(trade_id=11)["text"], trade_event(trade_id=12)["text"]]

    actions = s.positions_loaded(load, [Loaded(btc, "t", 12, missed), Loaded(eth, "u", 40)])

    assert kinds(actions) == [Send, Send, Send]  # trades have no snapshot, recovered or not
    ack = sent(actions)[0]
    assert ack["positions"] == {"BTCUSDT": {"epoch": "t", "seq": 12}, "ETHUSDT": {"epoch": "u", "seq": 40}}
    assert ack["recovered"] == {"BTCUSDT": True}
    assert [a.text for a in actions[1:]] == missed


def test_an_unrecoverable_trades_since_sends_no_snapshot():
    s = session()
    load = positions_of(
        request(s, "subscribe_trades", symbols=["BTCUSDT"], since={"BTCUSDT": {"epoch": "t", "seq": 1}})
    )

    actions = s.positions_loaded(load, [Loaded(MarketSub(Stream.TRADES, "BTCUSDT"), "t2", 0)])

    assert kinds(actions) == [Send]
    assert sent(actions)[0]["recovered"] == {"BTCUSDT": False}


def test_for_a_slow_client_the_ack_and_the_missed_events_queue_in_order():
    s = trading()
    load = resume(s, ["orders"], {"orders": {"epoch": EPOCH, "seq": 0}})
    missed = [seq_text(1), seq_text(2)]

    actions = s.positions_loaded(load, [Loaded(UserSub("orders"), EPOCH, 2, missed)], backlog=SLOW)

    assert actions == [Drain()]
    queued = drained(s)
    assert orjson.loads(queued[0])["type"] == "subscribed"
    assert queued[1:] == missed


def test_more_missed_events_than_a_slow_client_can_queue_close_it_with_4008():
    s = trading(queue_size=2)
    load = resume(s, ["orders"], {"orders": {"epoch": EPOCH, "seq": 0}})
    missed = [seq_text(n) for n in range(1, 4)]

    actions = s.positions_loaded(load, [Loaded(UserSub("orders"), EPOCH, 3, missed)], backlog=SLOW)

    assert [a.code for a in actions if isinstance(a, Close)] == [Code.SLOW_CONSUMER]
    assert s.closed


def test_a_resubscribe_after_an_unsubscribe_loads_positions_again():
    s = trading()
    subscribe_channels(s, "orders", seq=5)
    request(s, "unsubscribe", channels=["orders"])

    actions = request(s, "subscribe", channels=["orders"], since={"orders": {"epoch": EPOCH, "seq": 5}})

    assert LoadPositions in kinds(actions)


def test_a_subscribe_retried_after_its_position_load_failed_gets_positions_and_the_snapshot():
    s = trading()
    request(s, "subscribe", channels=["orders"])  # LoadPositions raised in the runner (a Redis blip)
    s.internal_error()  # "the request did not complete; retry"

    actions = request(s, "subscribe", channels=["orders"])

    assert Join not in kinds(actions)  # still held: the group is not joined twice
    load = positions_of(actions)
    assert load.subs == (UserSub("orders"),)
    after = s.positions_loaded(load, loaded_for(load, 4))
    assert sent(after)[0]["positions"] == {"orders": {"epoch": EPOCH, "seq": 4}}
    assert after[1:] == [FetchSnapshots((UserSub("orders"),))]


def test_a_repeat_subscribe_with_since_is_acked_with_the_position_already_sent_and_replays_nothing():
    s = trading()
    subscribe_channels(s, "orders", seq=5)

    actions = request(s, "subscribe", channels=["orders"], since={"orders": {"epoch": EPOCH, "seq": 3}})

    # 4 and 5 already went out on this connection: its position says so, and they are not sent twice
    assert kinds(actions) == [Send, SubscriptionsChanged]
    assert sent(actions)[0]["positions"] == {"orders": {"epoch": EPOCH, "seq": 5}}


def test_a_live_trade_already_replayed_by_the_resume_is_not_sent_again():
    s = session()
    load = positions_of(
        request(s, "subscribe_trades", symbols=["BTCUSDT"], since={"BTCUSDT": {"epoch": EPOCH, "seq": 5}})
    )
    replayed = [market_update("trade", seq=6)["text"]]
    s.positions_loaded(load, [Loaded(MarketSub(Stream.TRADES, "BTCUSDT"), EPOCH, 6, replayed)])

    assert s.event(market_update("trade", seq=6), 0) == []
    assert s.event(market_update("trade", seq=7), 0) == [Send(market_update("trade", seq=7)["text"], "trade")]


# --- live trading events: seq order, duplicates, gaps, epochs --------------------------------------


def test_the_next_seq_is_sent_and_becomes_the_position():
    s = trading()
    subscribe_channels(s, "orders", seq=3)

    assert s.event(seq_event(4), 0) == [Send(seq_text(4), "order_update")]
    assert s.delivered[UserSub("orders")] == (EPOCH, 4)


def test_a_duplicate_or_older_seq_is_dropped():
    s = trading()
    subscribe_channels(s, "orders", seq=3)

    assert s.event(seq_event(3), 0) == []
    assert s.event(seq_event(1), 0) == []
    assert s.delivered[UserSub("orders")] == (EPOCH, 3)


def test_a_seq_past_the_next_asks_for_the_gap_and_sends_nothing_yet():
    s = trading()
    subscribe_channels(s, "orders", seq=3)

    assert s.event(seq_event(6), 0) == [FillGap(UserSub("orders"), EPOCH, 3, 6)]
    assert s.delivered[UserSub("orders")] == (EPOCH, 6)  # the fill brings everything up to 6
    assert s.event(seq_event(5), 0) == []  # a late one waiting behind it: the fill brings it
    assert s.event(seq_event(6), 0) == []


def test_each_channel_keeps_its_own_seq():
    s = trading()
    subscribe_channels(s, "orders", "risk_alerts", seq=3)

    assert kinds(s.event(seq_event(4, "risk_alerts"), 0)) == [Send]
    assert kinds(s.event(seq_event(4, "orders"), 0)) == [Send]
    assert s.event(seq_event(4, "risk_alerts"), 0) == []


def test_a_new_epoch_is_sent_and_restarts_the_count():
    s = trading()
    subscribe_channels(s, "orders", seq=30)

    assert s.event(seq_event(1, epoch="e2"), 0) == [Send(seq_text(1), "order_update")]
    assert s.delivered[UserSub("orders")] == ("e2", 1)
    assert s.event(seq_event(1, epoch="e2"), 0) == []
    assert s.event(seq_event(3, epoch="e2"), 0) == [FillGap(UserSub("orders"), "e2", 1, 3)]


def test_a_trading_event_without_seq_is_sent_and_leaves_the_position_alone():
    s = trading()
    subscribe_channels(s, "orders", seq=3)

    assert kinds(s.event(order_event(9), 0)) == [Send]
    assert s.delivered[UserSub("orders")] == (EPOCH, 3)


def test_an_event_of_a_channel_without_a_position_is_sent_as_it_comes():
    s = trading()

    assert kinds(s.event(seq_event(7), 0)) == [Send]
    assert UserSub("orders") not in s.delivered


# --- live market updates: the subscription and the position ------------------------------------------


def test_a_market_update_for_a_held_stream_is_sent_and_becomes_its_position():
    s = session()
    subscribe_symbols(s, "ticker", "BTCUSDT", seq=4)
    update = market_update(seq=5)

    assert s.event(update, 0) == [Send(update["text"], "ticker")]
    assert s.delivered[MarketSub(Stream.TICKER, "BTCUSDT")] == (EPOCH, 5)


def test_a_market_update_of_a_stream_the_session_does_not_hold_is_dropped():
    s = session()
    subscribe_symbols(s, "ticker", "BTCUSDT")
    subscribe_symbols(s, "trades", "ETHUSDT")

    assert s.event(market_update(symbol="ETHUSDT", seq=5), 0) == []  # the symbol's trades only
    assert s.event(market_update("trade", symbol="BTCUSDT", seq=5), 0) == []  # the symbol's ticker only
    assert kinds(s.event(market_update(symbol="BTCUSDT", seq=5), 0)) == [Send]  # the same connection hears


def test_a_market_update_already_on_its_way_when_the_client_left_is_dropped():
    s = session()
    subscribe_symbols(s, "ticker", "BTCUSDT")
    assert kinds(s.event(market_update(seq=1), 0)) == [Send]
    request(s, "unsubscribe_ticker", symbols=["BTCUSDT"])

    assert s.event(market_update(seq=2), 0) == []
    assert s.delivered == {}


def test_a_ticker_not_newer_than_the_snapshot_position_is_dropped():
    s = session()
    subscribe_symbols(s, "ticker", "BTCUSDT", seq=7)

    assert s.event(market_update(seq=7), 0) == []  # the snapshot the subscriber was sent
    assert s.event(market_update(seq=6), 0) == []  # older still
    assert kinds(s.event(market_update(seq=8), 0)) == [Send]


def test_a_market_update_of_a_new_worker_run_is_sent_whatever_its_seq():
    s = session()
    subscribe_symbols(s, "ticker", "BTCUSDT", seq=70)

    update = market_update(seq=1, epoch="e2")

    assert s.event(update, 0) == [Send(update["text"], "ticker")]
    assert s.delivered[MarketSub(Stream.TICKER, "BTCUSDT")] == ("e2", 1)
    assert s.event(market_update(seq=1, epoch="e2"), 0) == []


def test_market_updates_skipping_seqs_are_sent_without_a_gap_fill():
    s = session()
    subscribe_symbols(s, "trades", "BTCUSDT", seq=3)

    assert kinds(s.event(market_update("trade", seq=9), 0)) == [Send]  # trades may be dropped: no FillGap
    assert s.delivered[MarketSub(Stream.TRADES, "BTCUSDT")] == (EPOCH, 9)


def test_a_market_update_without_a_seq_is_sent_and_leaves_the_position_alone():
    s = session()
    subscribe_symbols(s, "ticker", "BTCUSDT", seq=3)
    update = {key: value for key, value in market_update(seq=1).items() if key not in ("seq", "epoch")}

    assert kinds(s.event(update, 0)) == [Send]
    assert s.delivered[MarketSub(Stream.TICKER, "BTCUSDT")] == (EPOCH, 3)


def test_a_market_update_of_a_held_stream_without_a_position_yet_is_sent():
    s = session()
    request(s, "subscribe_ticker", symbols=["BTCUSDT"])  # the position load is still under way (or failed)

    assert kinds(s.event(market_update(seq=5), 0)) == [Send]
    assert s.delivered == {}


def test_a_queued_market_update_is_conflated_by_its_key():
    s = session()
    subscribe_symbols(s, "ticker", "BTCUSDT")
    s.event(market_update(seq=1, price="1"), SLOW)

    s.event(market_update(seq=2, price="2"), SLOW)

    assert drained(s) == [market_update(seq=2, price="2")["text"]]


def test_an_update_older_than_the_snapshot_actually_sent_is_dropped():
    s = session()
    subscribe_symbols(s, "ticker", "BTCUSDT", seq=5)  # the stored snapshot stood at 5 when loaded
    btc = MarketSub(Stream.TICKER, "BTCUSDT")
    assert kinds(s.snapshot(btc, [market_update(seq=7)["text"]])) == [Send]  # it stood at 7 when fetched

    assert s.event(market_update(seq=6), 0) == []  # held while busy: older than what the client has


# --- filling gaps -------------------------------------------------------------------------------------


def test_a_filled_gap_is_sent_in_order_and_the_next_event_follows():
    s = trading()
    subscribe_channels(s, "orders", seq=3)
    gap = s.event(seq_event(6), 0)[0]

    actions = s.gap_filled(gap, [seq_text(4), seq_text(5), seq_text(6)])

    assert actions == [Send(seq_text(n), "gap") for n in (4, 5, 6)]
    assert s.delivered[UserSub("orders")] == (EPOCH, 6)
    assert s.event(seq_event(5), 0) == []  # the late one arrives after all: already sent
    assert kinds(s.event(seq_event(7), 0)) == [Send]


def test_a_gap_the_history_lost_moves_on_and_fetches_the_snapshot():
    s = trading()
    subscribe_channels(s, "orders", seq=3)
    gap = s.event(seq_event(6), 0)[0]

    actions = s.gap_filled(gap, [])

    assert actions == [FetchSnapshots((UserSub("orders"),))]
    assert s.delivered[UserSub("orders")] == (EPOCH, 6)
    assert kinds(s.event(seq_event(7), 0)) == [Send]


def test_a_gap_read_back_in_part_sends_what_it_has_then_the_snapshot():
    s = trading()
    subscribe_channels(s, "orders", seq=3)
    gap = s.event(seq_event(6), 0)[0]

    actions = s.gap_filled(gap, [seq_text(5), seq_text(6)])

    assert actions == [Send(seq_text(5), "gap"), Send(seq_text(6), "gap"), FetchSnapshots((UserSub("orders"),))]


def test_a_lost_gap_of_a_channel_without_a_snapshot_just_moves_on():
    s = trading()
    subscribe_channels(s, "risk_alerts", seq=3)
    gap = s.event(seq_event(5, "risk_alerts"), 0)[0]

    assert s.gap_filled(gap, []) == []
    assert s.delivered[UserSub("risk_alerts")] == (EPOCH, 5)


def test_a_gap_of_a_channel_left_meanwhile_sends_nothing():
    s = trading()
    subscribe_channels(s, "orders", seq=3)
    gap = s.event(seq_event(6), 0)[0]
    request(s, "unsubscribe", channels=["orders"])

    assert s.gap_filled(gap, [seq_text(4), seq_text(5), seq_text(6)]) == []
    assert UserSub("orders") not in s.delivered


def test_a_filled_gap_for_a_slow_client_queues_behind_what_waits():
    s = trading()
    subscribe_channels(s, "orders", seq=3)
    s.event(trade_event(), SLOW)
    gap = s.event(seq_event(5), 0)[0]

    assert s.gap_filled(gap, [seq_text(4), seq_text(5)], backlog=0) == []
    assert drained(s) == [trade_event()["text"], seq_text(4), seq_text(5)]


def test_a_gap_filled_after_a_later_gap_never_moves_the_position_back():
    s = trading()
    subscribe_channels(s, "orders", seq=3)
    first = s.event(seq_event(6), 0)[0]
    second = s.event(seq_event(8), 0)[0]
    assert second == FillGap(UserSub("orders"), EPOCH, 6, 8)

    s.gap_filled(first, [seq_text(4), seq_text(5), seq_text(6)])

    assert s.delivered[UserSub("orders")] == (EPOCH, 8)
    assert s.event(seq_event(7), 0) == []  # the second fill brings it


def test_a_fill_of_the_old_epoch_after_the_history_restarted_keeps_the_new_position():
    s = trading()
    subscribe_channels(s, "orders", seq=3)
    gap = s.event(seq_event(6), 0)[0]
    assert kinds(s.event(seq_event(1, epoch="e2"), 0)) == [Send]  # the history was lost and began again

    s.gap_filled(gap, [seq_text(4), seq_text(5), seq_text(6)])

    assert s.delivered[UserSub("orders")] == ("e2", 1)


def test_a_fill_for_a_channel_held_again_without_a_position_takes_the_fills_position():
    s = trading()
    subscribe_channels(s, "orders", seq=3)
    gap = s.event(seq_event(6), 0)[0]
    request(s, "unsubscribe", channels=["orders"])
    request(s, "subscribe", channels=["orders"])  # its position load failed
    s.internal_error()

    actions = s.gap_filled(gap, [seq_text(4), seq_text(5), seq_text(6)])

    assert [a.text for a in actions] == [seq_text(4), seq_text(5), seq_text(6)]
    assert s.delivered[UserSub("orders")] == (EPOCH, 6)


def test_events_one_at_a_time_with_a_gap_reach_the_client_in_order_once():
    s = trading()
    subscribe_channels(s, "orders", seq=3)
    history = {n: seq_text(n) for n in range(1, 9)}

    out = []
    for seq in (4, 7, 5, 6, 8, 8):  # 5 and 6 late, 8 twice
        out += carry_out(s, s.event(seq_event(seq), 0), history)

    assert seqs(out) == [4, 5, 6, 7, 8]


@pytest.mark.parametrize("batch", [False, True], ids=["unbatched", "batched"])
def test_two_waiting_events_after_a_gap_reach_the_client_in_order_once(batch):
    s = trading()
    s.batch = batch
    subscribe_channels(s, "orders", seq=3)
    history = {n: seq_text(n) for n in range(1, 9)}

    out = carry_out(s, s.events([seq_event(5), seq_event(6)], 0), history)

    assert seqs(out) == [4, 5, 6]


def test_a_late_event_waiting_behind_the_one_that_opened_its_gap_is_sent_once_in_order():
    s = trading()
    subscribe_channels(s, "orders", seq=3)
    history = {n: seq_text(n) for n in range(1, 9)}

    out = carry_out(s, s.events([seq_event(5), seq_event(4)], 0), history)

    assert seqs(out) == [4, 5]


# --- token refresh -----------------------------------------------------------------------------------


def refresh_with(s: Session, token: str) -> list:
    """A refresh frame, then the token check the runner does (realtime.middleware.validate_access_token)."""
    (check,) = request(s, "refresh", token=token)
    assert check == CheckToken(token)
    return s.token_checked(*validate_access_token(check.token))


def test_a_refresh_asks_for_the_token_to_be_checked():
    assert request(trading(), "refresh", token="abc") == [CheckToken("abc")]


def test_a_valid_token_of_the_same_user_replaces_the_expiry():
    token = access_token(USER_ID)
    expires_at = validate_access_token(token)[1]
    s = session(Endpoint.TRADING, user_id=USER_ID, expires_at=expires_at - 120)  # the old token ends sooner

    actions = refresh_with(s, token)

    reply = sent(actions)[0]
    assert reply["type"] == "refreshed"
    assert reply["expires_at"] == protocol.refreshed(expires_at)["expires_at"]
    assert reply["expires_at"].endswith("Z")
    assert s.expires_at == expires_at
    assert s.tick(START + 1, expires_at - 60) == []  # the old expiry passed: still open
    assert [a.code for a in s.tick(START + 2, expires_at) if isinstance(a, Close)] == [Code.AUTH_FAILED]


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(forged_token(USER_ID), id="forged"),
        pytest.param("not-a-jwt", id="garbage"),
        pytest.param(refresh_token(USER_ID), id="a refresh token"),
    ],
)
def test_an_invalid_token_is_refused_with_4001_and_the_current_token_stays(token):
    s = session(Endpoint.TRADING, user_id=USER_ID, expires_at=WALL + 60)

    actions = refresh_with(s, token)

    error = the_error(actions)
    assert error["code"] == Code.AUTH_FAILED
    assert "current token stays" in error["message"]
    assert s.expires_at == WALL + 60
    assert not s.closed
    assert [a.code for a in s.tick(START + 1, WALL + 60) if isinstance(a, Close)] == [Code.AUTH_FAILED]


def test_an_expired_token_is_refused():
    from datetime import timedelta

    s = session(Endpoint.TRADING, user_id=USER_ID, expires_at=WALL + 60)

    error = the_error(refresh_with(s, access_token(USER_ID, lifetime=timedelta(seconds=-1))))

    assert error["code"] == Code.AUTH_FAILED
    assert s.expires_at == WALL + 60


def test_another_users_token_is_refused_and_the_current_token_stays():
    s = session(Endpoint.TRADING, user_id=USER_ID, expires_at=WALL + 60)

    error = the_error(refresh_with(s, access_token(USER_ID + 1)))

    assert error["code"] == Code.AUTH_FAILED
    assert "another user" in error["message"]
    assert s.expires_at == WALL + 60


def test_a_token_without_expiry_makes_the_connection_never_expire():
    s = session(Endpoint.TRADING, user_id=USER_ID, expires_at=WALL + 60)

    actions = s.token_checked(str(USER_ID), None, "")

    assert sent(actions)[0]["expires_at"] == "never"
    assert s.expires_at is None
    assert s.tick(START + 1, WALL + 3600) == []


def test_refresh_is_refused_on_the_market_endpoint():
    s = session(Endpoint.MARKET)

    error = the_error(request(s, "refresh", token="abc"))

    assert error["code"] == Code.INVALID_MESSAGE
    assert "'refresh'" in error["message"]


def test_refresh_is_refused_on_a_trading_session_without_a_user():
    s = session(Endpoint.TRADING, user_id=None)

    error = the_error(request(s, "refresh", token="abc"))

    assert error["code"] == Code.INVALID_MESSAGE
    assert "'refresh'" in error["message"]


# --- batched frames ----------------------------------------------------------------------------------


def batched(**limit_changes) -> Session:
    s = session(**limit_changes)
    s.batch = True
    return s


def test_waiting_events_go_out_as_one_array_frame_of_their_texts_unchanged():
    events = [ticker_event("BTCUSDT"), trade_event(), ticker_event("ETHUSDT")]

    actions = batched().events(events, 0)

    texts = [event["text"] for event in events]
    assert actions == [Send("[" + ",".join(texts) + "]", "batch", 3)]
    assert orjson.loads(actions[0].text) == [orjson.loads(text) for text in texts]


def test_one_waiting_event_goes_out_as_itself():
    event = ticker_event()

    assert batched().events([event], 0) == [Send(event["text"], "ticker")]


def test_without_batch_waiting_events_go_out_one_message_per_frame():
    events = [ticker_event("BTCUSDT"), trade_event()]

    assert session().events(events, 0) == [Send(events[0]["text"], "ticker"), Send(events[1]["text"], "trade")]


def test_batching_merges_consecutive_sends_and_keeps_every_other_action_in_its_place():
    s = trading()
    s.batch = True
    subscribe_channels(s, "orders", seq=3)
    one, two, three = ticker_event("BTCUSDT"), ticker_event("ETHUSDT"), trade_event()

    actions = s.events([one, two, seq_event(6), three, seq_event(7)], 0)

    assert actions == [
        Send(f"[{one['text']},{two['text']}]", "batch", 2),
        FillGap(UserSub("orders"), EPOCH, 3, 6),
        Send(f"[{three['text']},{seq_text(7)}]", "batch", 2),
    ]


def test_a_batch_may_start_with_another_action():
    s = trading()
    s.batch = True
    subscribe_channels(s, "orders", seq=3)
    one, two = ticker_event("BTCUSDT"), ticker_event("ETHUSDT")

    actions = s.events([seq_event(5), one, two], 0)

    assert actions == [FillGap(UserSub("orders"), EPOCH, 3, 5), Send(f"[{one['text']},{two['text']}]", "batch", 2)]


def test_events_for_a_slow_batched_client_ask_for_one_drain_and_queue_the_rest():
    s = batched()
    events = [trade_event(trade_id=n) for n in range(3)]

    assert s.events(events, SLOW) == [Drain()]
    assert s.drain(0) == Send("[" + ",".join(event["text"] for event in events) + "]", "batch", 3)


def test_a_batch_stops_growing_once_it_holds_batch_max_bytes():
    big = [trade_event(price=str(n), trade_id=n) for n in range(3)]
    big = [{**event, "text": event["text"][:-1] + ',"pad":"' + "x" * (BATCH_MAX_BYTES // 2) + '"}'} for event in big]

    actions = batched().events(big, 0)

    assert [a.messages for a in actions] == [2, 1]
    assert orjson.loads(actions[0].text) == [orjson.loads(event["text"]) for event in big[:2]]
    assert actions[1] == Send(big[2]["text"], "trade")


def test_a_queued_backlog_drains_as_one_array_frame():
    s = batched()
    events = [trade_event(price=str(n), trade_id=n) for n in range(3)]
    for event in events:
        s.event(event, SLOW)

    step = s.drain(0)

    assert step == Send("[" + ",".join(event["text"] for event in events) + "]", "batch", 3)
    assert s.drain(0) is None


def test_a_single_queued_message_drains_as_itself():
    s = batched()
    s.event(trade_event(), SLOW)

    assert s.drain(0) == Send(trade_event()["text"], "queued")


def test_a_batched_drain_still_waits_for_the_socket():
    s = batched()
    s.event(trade_event(), SLOW)

    assert s.drain(flow.LOW_WATER + 1) == DRAIN_POLL_SECONDS


def test_a_long_batched_backlog_drains_in_frames_of_about_batch_max_bytes_in_order():
    s = batched(queue_size=1000)
    pad = "y" * 1000
    texts = [orjson.dumps({"type": "trade", "n": n, "pad": pad}).decode() for n in range(200)]
    for text in texts:
        s.event({"type": protocol.MARKET_EVENT, "text": text, "key": None, "kind": "trade"}, SLOW)

    frames = []
    while (step := s.drain(0)) is not None:
        frames.append(step)

    assert len(frames) > 1
    position = 0
    for frame in frames:
        held = texts[position : position + frame.messages]
        position += frame.messages
        assert frame.text == ("[" + ",".join(held) + "]" if len(held) > 1 else held[0])  # the texts, not re-encoded
        if frame is not frames[-1]:  # full: it stopped at the message that took it to the bound
            assert sum(map(len, held)) >= BATCH_MAX_BYTES > sum(map(len, held[:-1]))
    assert position == len(texts)


# --- admission and revocation ---------------------------------------------------------------------


def test_an_admitted_user_listens_for_revocation_and_takes_the_tokens_expiry():
    s = session(Endpoint.TRADING)

    assert s.admitted(USER_ID, WALL + 60) == [Join(Revocations())]
    assert (s.user_id, s.expires_at) == (USER_ID, WALL + 60)


def test_an_admitted_anonymous_connection_joins_nothing():
    s = session()

    assert s.admitted(None, None) == []
    assert (s.user_id, s.expires_at) == (None, None)


def revoked_event(message: str | None = "Password changed") -> dict:
    return {"type": protocol.REVOKED_EVENT, "message": message}


def test_a_revocation_closes_with_an_error_frame_and_4002():
    s = trading()

    actions = s.event(revoked_event(), 0)

    assert kinds(actions) == [Send, Close]
    error = the_error(actions[:1])
    assert (error["code"], error["message"]) == (Code.USER_INACTIVE, "Password changed")
    assert actions[1] == Close(Code.USER_INACTIVE, "Password changed")
    assert s.closed


def test_a_revocation_without_a_message_says_why_in_general():
    actions = trading().event(revoked_event(None), 0)

    assert "deactivated" in the_error(actions[:1])["message"]


def test_a_revocation_closes_at_once_even_behind_a_queue_and_ends_everything():
    s = trading()
    subscribe_channels(s, "orders", seq=3)
    s.event(seq_event(4), SLOW)

    actions = s.event(revoked_event(), SLOW)

    assert kinds(actions) == [Send, Close]
    assert s.drain(0) is None
    assert s.event(seq_event(5), 0) == []


def test_a_revocation_among_waiting_events_closes_after_what_came_before_it():
    s = trading()
    s.batch = True
    one = ticker_event()

    actions = s.events([one, revoked_event(), ticker_event("ETHUSDT")], 0)

    assert kinds(actions) == [Send, Close]
    first, error = orjson.loads(actions[0].text)
    assert first == orjson.loads(one["text"])
    assert error["code"] == Code.USER_INACTIVE


def test_end_of_a_users_session_also_leaves_the_revocation_group():
    s = trading()
    subscribe_channels(s, "orders")

    assert s.end() == [Leave(UserSub("orders")), Leave(Revocations())]


def test_end_of_an_anonymous_session_leaves_no_revocation_group():
    assert session().end() == []
