"""realtime.fanout: one market fan-out per process, with a fake channel layer and fake connections."""

from __future__ import annotations

import asyncio
import logging

import msgpack
import orjson
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from realtime import fanout, metrics
from realtime.fanout import MarketFanout, get_fanout, text_frame

TIMEOUT = 10.0  # generous: the machine is shared


def parsed(data: bytes) -> Frame:
    """The frame as python-websockets' client parser reads it (a client expects unmasked frames)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None)
    with pytest.raises(StopIteration) as done:
        next(parser)
    assert reader.at_eof()  # the frame is exactly the bytes given, nothing left over
    return done.value.value


# --- the frame ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, bytes((0x81, 0))),
        (125, bytes((0x81, 125))),  # the largest length in the 7-bit field
        (126, bytes((0x81, 126, 0, 126))),  # the smallest with a 16-bit length
        (65535, bytes((0x81, 126, 0xFF, 0xFF))),  # the largest with a 16-bit length
        (65536, bytes((0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0))),  # the smallest with a 64-bit length
    ],
)
def test_a_text_frame_has_the_shortest_length_encoding_and_parses_back_to_its_payload(size, header):
    payload = ("é" * (size // 2) + "x" * (size % 2)).encode()  # two bytes a character: the length counts bytes
    assert len(payload) == size

    data = text_frame(payload)

    assert data == header + payload
    frame = parsed(data)
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload)
    assert (frame.rsv1, frame.rsv2, frame.rsv3) == (False, False, False)


def test_a_large_frame_parses_back_whole():
    payload = b'{"pad":"' + b"x" * 200_000 + b'"}'

    assert parsed(text_frame(payload)).data == payload


# --- joining and leaving --------------------------------------------------------------------------------


class Layer:
    """A channel layer reduced to what the fan-out uses, recording the group changes."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.changes: list[tuple[str, str, str]] = []
        self.channels = 0

    async def new_channel(self) -> str:
        await asyncio.sleep(0)  # a real layer awaits here: concurrent joins meet the lock
        self.channels += 1
        return f"market.process!{self.channels}"

    async def group_add(self, group: str, channel: str) -> None:
        self.changes.append(("add", group, channel))

    async def group_discard(self, group: str, channel: str) -> None:
        self.changes.append(("discard", group, channel))

    async def receive(self, channel: str) -> dict:
        return await self.queue.get()


class Member:
    """A connection's runner, as far as the fan-out sees it."""

    def __init__(self, fail: bool = False, batch: bool = False, writes: bool = False) -> None:
        self.got: list[tuple[dict, object]] = []
        self.arrays: list[list[dict]] = []  # the updates handed over together (a ?batch=1 connection)
        self.fail = fail
        self.batch = batch
        self.writes = writes  # what the connection answers: written at once, or not
        self.arrived = asyncio.Event()

    def market_event(self, event: dict, frame, sub=None) -> bool:
        self.got.append((event, frame))
        self.arrived.set()
        if self.fail:
            raise RuntimeError("this connection broke")
        return self.writes

    def market_events(self, updates: list[tuple], arrays: dict) -> bool:
        self.arrays.append([event for event, _frame, _sub in updates])
        self.got += [(event, frame) for event, frame, _sub in updates]
        self.arrived.set()
        if self.fail:
            raise RuntimeError("this connection broke")
        return self.writes

    async def wait_for(self, count: int) -> None:
        async def enough() -> None:
            while len(self.got) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), TIMEOUT)


@pytest.fixture
async def layer(monkeypatch):
    fake = Layer()
    monkeypatch.setattr(fanout, "get_channel_layer", lambda alias: fake)
    return fake


@pytest.fixture
async def hub(layer):
    """A fan-out of its own for the test, its reading task stopped afterwards."""
    made = MarketFanout()
    yield made
    if made._task is not None:
        made._task.cancel()
        await asyncio.gather(made._task, return_exceptions=True)


def update(group: str = "market.ticker.btcusdt", price: str = "1", key: str | None = "ticker:BTCUSDT") -> dict:
    text = f'{{"type":"ticker","symbol":"BTCUSDT","price":"{price}"}}'
    return {"type": "market.message", "text": text, "key": key, "kind": "ticker", "group": group}


async def test_the_first_join_of_a_group_subscribes_the_process_channel_once(hub, layer):
    a, b = Member(), Member()

    await hub.join("market.ticker.btcusdt", a)
    await hub.join("market.ticker.btcusdt", b)

    assert layer.changes == [("add", "market.ticker.btcusdt", hub.channel)]
    assert hub.members == {"market.ticker.btcusdt": {a, b}}


async def test_every_group_is_subscribed_on_the_one_channel_of_the_process(hub, layer):
    await asyncio.gather(hub.join("market.ticker.btcusdt", Member()), hub.join("market.trades.btcusdt", Member()))

    assert layer.channels == 1
    assert sorted(layer.changes) == [
        ("add", "market.ticker.btcusdt", hub.channel),
        ("add", "market.trades.btcusdt", hub.channel),
    ]


async def test_the_group_is_left_when_its_last_member_leaves(hub, layer):
    a, b = Member(), Member()
    await hub.join("market.ticker.btcusdt", a)
    await hub.join("market.ticker.btcusdt", b)

    await hub.leave("market.ticker.btcusdt", a)
    assert layer.changes[1:] == []  # b still listens

    await hub.leave("market.ticker.btcusdt", b)
    assert layer.changes[1:] == [("discard", "market.ticker.btcusdt", hub.channel)]
    assert hub.members == {}


async def test_leaving_what_was_not_joined_changes_nothing(hub, layer):
    a = Member()
    await hub.join("market.ticker.btcusdt", a)

    await hub.leave("market.ticker.btcusdt", Member())
    await hub.leave("market.trades.btcusdt", a)
    await hub.leave("market.ticker.btcusdt", a)
    await hub.leave("market.ticker.btcusdt", a)  # twice

    assert layer.changes == [
        ("add", "market.ticker.btcusdt", hub.channel),
        ("discard", "market.ticker.btcusdt", hub.channel),
    ]


async def test_a_group_joined_again_after_it_was_left_is_subscribed_again(hub, layer):
    a = Member()
    await hub.join("market.ticker.btcusdt", a)
    await hub.leave("market.ticker.btcusdt", a)

    await hub.join("market.ticker.btcusdt", a)

    assert [change[0] for change in layer.changes] == ["add", "discard", "add"]


# --- delivering ----------------------------------------------------------------------------------------


def test_an_update_reaches_every_member_of_its_group_with_one_shared_frame():
    hub = MarketFanout()
    a, b, other = Member(), Member(), Member()
    hub.members = {"market.ticker.btcusdt": {a, b}, "market.ticker.ethusdt": {other}}
    event = update()

    hub.deliver(event)

    assert [got[0] for got in a.got] == [event] and [got[0] for got in b.got] == [event]
    assert other.got == []
    frame = a.got[0][1]
    assert frame is b.got[0][1]
    assert frame.text is event["text"]
    assert frame.bytes() == text_frame(event["text"].encode())
    assert frame.bytes() is frame.bytes()  # framed once, whoever writes it


def test_an_update_of_a_group_nobody_here_listens_to_goes_nowhere():
    hub = MarketFanout()
    a = Member()
    hub.members = {"market.ticker.btcusdt": {a}}

    hub.deliver(update("market.ticker.ethusdt"))
    hub.deliver({**update(), "group": None})
    del hub.members["market.ticker.btcusdt"]
    hub.deliver(update())

    assert a.got == []


def test_a_member_that_leaves_while_an_update_is_delivered_does_not_break_the_delivery():
    hub = MarketFanout()

    class Leaver(Member):
        def market_event(self, event, frame, sub=None) -> bool:
            return super().market_event(event, frame, sub)
            hub.members["market.ticker.btcusdt"].discard(self)

    a, b = Leaver(), Leaver()
    hub.members = {"market.ticker.btcusdt": {a, b}}

    hub.deliver(update())

    assert len(a.got) == len(b.got) == 1


async def test_updates_read_from_the_layer_reach_the_members_in_order(hub, layer):
    a = Member()
    await hub.join("market.ticker.btcusdt", a)
    events = [update(price=str(n), key=None) for n in range(3)]

    for event in events:
        layer.queue.put_nowait(event)
    await a.wait_for(3)

    assert [got[0] for got in a.got] == events


async def test_a_newer_price_replaces_one_still_waiting_when_the_process_falls_behind(hub, layer):
    a = Member()
    before = metrics.INBOX_CONFLATIONS._value.get()
    for n in range(3):  # waiting before the fan-out reads: all three are read before any is delivered
        layer.queue.put_nowait(update(price=str(n)))
    layer.queue.put_nowait(update(price="trade", key=None))

    await hub.join("market.ticker.btcusdt", a)
    await a.wait_for(2)

    assert [got[0]["text"] for got in a.got] == [update(price="2")["text"], update(price="trade")["text"]]
    assert metrics.INBOX_CONFLATIONS._value.get() - before == 2


async def test_a_member_that_fails_is_logged_and_the_others_and_later_updates_still_arrive(hub, layer, caplog):
    broken, fine = Member(fail=True), Member()
    await hub.join("market.ticker.btcusdt", broken)
    await hub.join("market.trades.btcusdt", fine)

    with caplog.at_level(logging.ERROR, logger=fanout.__name__):
        layer.queue.put_nowait(update())
        layer.queue.put_nowait(update("market.trades.btcusdt", key=None))
        await fine.wait_for(1)

    assert len(broken.got) == 1
    assert "market fan-out failed for" in caplog.text


# --- updates that waited together (the process fell behind) ------------------------------------------------


def test_updates_that_waited_together_reach_each_member_in_order_and_a_batched_one_in_one_call():
    hub = MarketFanout()
    plain, batched, eth, lone = Member(), Member(batch=True), Member(batch=True), Member(batch=True)
    hub.members = {
        "market.ticker.btcusdt": {plain, batched, lone},
        "market.trades.btcusdt": {plain, batched},
        "market.ticker.ethusdt": {eth},
    }
    events = [update(), update("market.trades.btcusdt", key=None), update(price="2"), update("market.ticker.xrpusdt")]

    hub.deliver_all(events)

    mine = [events[0], events[1], events[2]]
    assert [got[0] for got in plain.got] == mine and plain.arrays == []
    assert batched.arrays == [mine]
    assert lone.arrays == [[events[0], events[2]]]
    assert eth.got == []
    assert batched.got[0][1] is plain.got[0][1]  # one frame per update, shared by every connection


def test_a_batched_member_with_one_waiting_update_gets_it_as_a_single_message():
    hub = MarketFanout()
    batched = Member(batch=True)
    hub.members = {"market.ticker.btcusdt": {batched}}

    hub.deliver_all([update(), update("market.ticker.ethusdt")])

    assert batched.arrays == [] and [got[0] for got in batched.got] == [update()]


def test_waiting_updates_are_counted_once_per_kind_for_the_connections_that_wrote_them():
    hub = MarketFanout()
    writer, batched, lagging = Member(writes=True), Member(batch=True, writes=True), Member(batch=True)
    hub.members = {"market.ticker.btcusdt": {writer, batched, lagging}, "market.trades.btcusdt": {batched}}
    tickers, trades = (metrics.MESSAGES_OUT.labels(type=kind)._value.get() for kind in ("ticker", "trade"))

    hub.deliver_all([update(), {**update("market.trades.btcusdt", key=None), "kind": "trade"}, update(price="2")])

    assert metrics.MESSAGES_OUT.labels(type="ticker")._value.get() - tickers == 4  # 2 each: writer, batched
    assert metrics.MESSAGES_OUT.labels(type="trade")._value.get() - trades == 1


def test_a_member_that_fails_on_waiting_updates_is_logged_and_the_others_still_get_theirs(caplog):
    hub = MarketFanout()
    broken, fine = Member(batch=True, fail=True), Member(batch=True)
    hub.members = {"market.ticker.btcusdt": {broken, fine}}

    with caplog.at_level(logging.ERROR, logger=fanout.__name__):
        hub.deliver_all([update(), update(price="2")])

    assert fine.arrays == [[update(), update(price="2")]]
    assert "market fan-out failed for one connection" in caplog.text


async def test_updates_waiting_in_the_layer_are_read_and_handed_over_together(hub, layer):
    batched = Member(batch=True)
    for n in range(3):  # waiting before the fan-out reads
        layer.queue.put_nowait(update(price=str(n), key=None))

    await hub.join("market.ticker.btcusdt", batched)
    await batched.wait_for(3)

    assert batched.arrays == [[update(price=str(n), key=None) for n in range(3)]]


def test_the_array_frame_of_waiting_updates_is_their_texts_joined_and_built_once():
    frames = [fanout._Frame(update(price=str(n))["text"]) for n in range(3)]
    arrays: dict = {}

    built = fanout.array_frame(frames, arrays)

    assert parsed(built).data == ("[" + ",".join(frame.text for frame in frames) + "]").encode()
    assert parsed(built).opcode is Opcode.TEXT
    assert fanout.array_frame(list(frames), arrays) is built
    assert fanout.array_frame(frames[:2], arrays) is not built


def test_a_msgpack_connections_frames_are_binary_built_once_and_hold_the_same_messages():
    frames = [fanout._Frame(update(price=str(n))["text"]) for n in range(3)]
    arrays: dict = {}

    single = parsed(frames[0].binary())
    array = fanout.array_frame(frames, arrays, binary=True)

    assert single.opcode is Opcode.BINARY
    assert msgpack.unpackb(single.data) == orjson.loads(frames[0].text)
    assert frames[0].binary() is frames[0].binary()
    assert parsed(array).opcode is Opcode.BINARY
    assert msgpack.unpackb(parsed(array).data) == [orjson.loads(frame.text) for frame in frames]
    assert fanout.array_frame(frames, arrays, binary=True) is array
    assert fanout.array_frame(frames, arrays) is not array  # the JSON array frame is another one


# --- one per event loop -------------------------------------------------------------------------------


def test_each_event_loop_has_its_own_fan_out_and_keeps_it(monkeypatch):
    monkeypatch.setattr(fanout, "_fanouts", {})

    first = get_fanout(lambda: 1)

    assert get_fanout(lambda: 1) is first
    assert get_fanout(lambda: 2) is not first


async def test_the_running_loop_finds_its_fan_out(monkeypatch):
    monkeypatch.setattr(fanout, "_fanouts", {})

    assert get_fanout() is get_fanout()
    assert list(fanout._fanouts) == [id(asyncio.get_running_loop())]
