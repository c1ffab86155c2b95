"""realtime.publish: events are numbered where they are stored, sent once encoded, with seq and epoch."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from realtime import groups, history, protocol, publish
from tests import messages
from tests.realtime.test_protocol import orderbook_message, ticker_message, trade_message


class RecordingLayer:
    def __init__(self):
        self.sent: list[tuple[str, dict]] = []

    async def group_send(self, group: str, event: dict) -> None:
        self.sent.append((group, event))


@pytest.fixture
def layer(monkeypatch):
    recording = RecordingLayer()
    monkeypatch.setattr(publish, "get_channel_layer", lambda alias="default": recording)
    return recording


@pytest.fixture(autouse=True)
def fresh_history():
    history.set_history(history.MemoryHistory(size=100, ttl=900))
    yield
    history.set_history(None)


def order_update(order_id: int) -> dict:
    return messages.order_update(order_id=order_id)


# --- trading events -----------------------------------------------------------------------------


async def test_a_trading_event_goes_to_its_user_channel_with_its_seq_in_the_text_and_beside_it(layer):
    appended = await publish.apublish_user(7, "orders", order_update(1))

    [(group, event)] = layer.sent
    assert group == groups.user(7, "orders")
    assert event["type"] == protocol.USER_EVENT
    assert event["kind"] == "order_update"
    assert (event["seq"], event["epoch"]) == (appended.seq, appended.epoch) == (1, appended.epoch)
    assert event["text"] == appended.text
    assert orjson.loads(event["text"]) == {
        **order_update(1),
        "seq": 1,
        "timestamp": orjson.loads(event["text"])["timestamp"],
    }


async def test_trading_events_are_numbered_per_user_and_channel(layer):
    await publish.apublish_user(7, "orders", order_update(1))
    await publish.apublish_user(7, "orders", order_update(2))
    await publish.apublish_user(8, "orders", order_update(3))
    await publish.apublish_user(7, "risk_alerts", {"type": "risk_alert", "timestamp": "x"})

    assert [event["seq"] for _group, event in layer.sent] == [1, 2, 1, 1]


async def test_a_published_trading_event_is_in_the_history_before_it_is_sent(monkeypatch):
    seen_in_history = []

    class CheckingLayer(RecordingLayer):
        async def group_send(self, group, event):
            store = history.get_history()
            key = history.user_key(7, "orders")
            seen_in_history.append(await store.read_range(key, event["epoch"], event["seq"] - 1, event["seq"]))

    monkeypatch.setattr(publish, "get_channel_layer", lambda alias="default": CheckingLayer())
    await publish.apublish_user(7, "orders", order_update(1))

    assert len(seen_in_history) == 1 and seen_in_history[0] is not None


async def test_the_sync_helpers_publish_through_the_history(layer):
    await asyncio.to_thread(publish.publish_order_update, 7, **_order_fields(5))

    [(_group, event)] = layer.sent
    position = await history.get_history().position(history.user_key(7, "orders"))
    assert (position.epoch, position.seq) == (event["epoch"], event["seq"]) == (event["epoch"], 1)


def _order_fields(order_id: int) -> dict:
    return messages.order_update_fields(order_id=order_id)


# --- market messages ----------------------------------------------------------------------------


@pytest.mark.parametrize("build", [ticker_message, orderbook_message], ids=["ticker", "orderbook"])
async def test_state_messages_count_up_by_one_per_symbol_in_this_run(layer, build):
    for symbol in ("BTCUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT"):
        await publish.apublish_market(build(symbol))

    events = [event for _group, event in layer.sent]
    btc = [event["seq"] for group, event in layer.sent if group.endswith(".btcusdt")]
    assert btc == [btc[0], btc[0] + 1, btc[0] + 2]
    assert {e["epoch"] for e in events} == {publish.MARKET_EPOCH}
    assert all(orjson.loads(e["text"])["seq"] == e["seq"] for e in events)


async def test_a_new_run_of_the_worker_numbers_above_the_last_run(layer, monkeypatch):
    first = await publish.apublish_market(ticker_message("XRPUSDT"))
    started = publish._counter_start() + 1000  # a new worker process, a second later
    monkeypatch.setattr(publish, "_market_counters", {})
    monkeypatch.setattr(publish, "_counter_start", lambda: started)

    second = await publish.apublish_market(ticker_message("XRPUSDT"))

    assert second.seq > first.seq


async def test_trades_are_numbered_through_their_symbol_history(layer):
    first = await publish.apublish_market(trade_message("BTCUSDT"))
    second = await publish.apublish_market(trade_message("BTCUSDT"))

    [(_g1, e1), (_g2, e2)] = layer.sent
    assert (e1["seq"], e2["seq"]) == (first.seq, second.seq) == (1, 2)
    assert e1["key"] is None  # trades are never conflated
    kept = await history.get_history().since(history.trades_key("BTCUSDT"), first.epoch, 0)
    assert kept == [e1["text"], e2["text"]]


async def test_a_market_message_is_encoded_once(layer, monkeypatch):
    calls = []
    real = protocol.encode
    monkeypatch.setattr(protocol, "encode", lambda message: calls.append(1) or real(message))

    await publish.apublish_market(orderbook_message())

    assert len(calls) == 1


# --- many market messages at once (the worker's batches) ------------------------------------------


async def test_preparing_many_gives_state_a_local_seq_and_trades_their_history_seq_in_order():
    messages_in = [trade_message("BTCUSDT"), ticker_message("BTCUSDT"), trade_message("BTCUSDT")]
    frames = await publish.aprepare_market_many(messages_in)

    assert [f.kind for f in frames] == ["trade", "ticker", "trade"]
    assert [f.seq for f in frames if f.kind == "trade"] == [1, 2]
    assert frames[1].epoch == publish.MARKET_EPOCH
    assert [orjson.loads(f.text)["seq"] for f in frames] == [f.seq for f in frames]


async def test_sending_many_on_another_layer_sends_each_in_order(layer):
    frames = await publish.aprepare_market_many([trade_message("BTCUSDT"), orderbook_message("ETHUSDT")])
    await publish.asend_market_many(frames)

    assert [(g, e["seq"]) for g, e in layer.sent] == [
        (groups.market("trades", "BTCUSDT"), frames[0].seq),
        (groups.market("orderbook", "ETHUSDT"), frames[1].seq),
    ]


@pytest.mark.parametrize("chunk", [publish.PUBLISH_CHUNK, 3])  # one script call, or several
async def test_sending_many_on_redis_pub_sub_reaches_every_group_in_order(monkeypatch, chunk):
    import uuid

    from channels_redis.pubsub import RedisPubSubChannelLayer

    from tests.integration.harness import redis_answers

    if not redis_answers():
        pytest.fail("Redis is not answering on 127.0.0.1:6379")
    # Pub/sub channels ignore the database number; a fresh prefix keeps this test's channels its own.
    real = RedisPubSubChannelLayer(hosts=["redis://127.0.0.1:6379/6"], prefix=f"test-{uuid.uuid4().hex[:8]}")
    monkeypatch.setattr(publish, "get_channel_layer", lambda alias="default": real)
    monkeypatch.setattr(publish, "PUBLISH_CHUNK", chunk)
    channel = await real.new_channel()
    await real.group_add(groups.market("trades", "BTCUSDT"), channel)
    await real.group_add(groups.market("ticker", "ETHUSDT"), channel)
    try:
        frames = await publish.aprepare_market_many(
            [trade_message("BTCUSDT") for _ in range(20)] + [ticker_message("ETHUSDT")]
        )
        await publish.asend_market_many(frames)
        received = [await asyncio.wait_for(real.receive(channel), 10) for _ in frames]
    finally:
        await real.flush()

    assert [e["seq"] for e in received if e["kind"] == "trade"] == list(range(1, 21))
    assert [e["text"] for e in received if e["kind"] == "ticker"] == [frames[-1].text]
