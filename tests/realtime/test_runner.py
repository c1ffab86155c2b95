"""realtime.runner: the market half of carrying out a session's actions, with fakes for the I/O around it."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from realtime import flow, groups, metrics, protocol, recovery, runner, wire
from realtime.fanout import _Frame, binary_frame, text_frame
from realtime.protocol import Code, Endpoint, Stream
from realtime.providers import providers
from realtime.registry import Connection
from realtime.session import FillGap, Limits, Loaded, LoadPositions, MarketSub, Session, UserSub, market_sub_of
from tests import messages

EPOCH = "w1"
USER_ID = 42
BTC = MarketSub(Stream.TICKER, "BTCUSDT")
GROUP = "market.ticker.btcusdt"
ENABLED = frozenset({"BTCUSDT", "ETHUSDT"})
TIMEOUT = 10.0


def update(seq: int, symbol: str = "BTCUSDT") -> dict:
    """A ticker update as realtime.publish sends it."""
    text = protocol.encode({**messages.ticker(symbol, str(seq)), "seq": seq})
    return {
        "type": protocol.MARKET_EVENT,
        "text": text,
        "key": protocol.conflation_key("ticker", symbol),
        "kind": "ticker",
        "seq": seq,
        "epoch": EPOCH,
        "symbol": symbol,
        "group": f"market.ticker.{symbol.lower()}",
    }


class Fanout:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str, object]] = []

    async def join(self, group: str, member) -> None:
        self.changes.append(("join", group, member))

    async def leave(self, group: str, member) -> None:
        self.changes.append(("leave", group, member))


class World:
    """A runner on a real session, with the socket, the fan-out, the histories and the snapshots faked."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        endpoint: Endpoint = Endpoint.MARKET,
        heartbeat: float = 30.0,
        batch: bool = False,
        binary: bool = False,
    ) -> None:
        self.session = Session(
            endpoint,
            Limits(
                rate_per_second=100.0,
                burst=100,
                max_message_bytes=4096,
                max_items_per_request=10,
                max_subscriptions=10,
                queue_size=10,
                heartbeat_interval=heartbeat,
            ),
            loop.time(),
            batch=batch,
            binary=binary,
        )
        self.sent: list[dict] = []  # what went through daphne's ASGI send
        self.raw: list[bytes] = []  # what was written straight to the socket
        self.open = True
        self.buffered = 0
        self.fanout = Fanout()
        user_id = USER_ID if endpoint is Endpoint.TRADING else None
        self.runner = runner.Runner(
            self.session,
            Connection("c1", str(endpoint), user_id),
            self.send,
            {groups.TRADING_LAYER: "trading!c1"},
            lambda: self.buffered,
            loop,
        )

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def write_frame(self, frame: bytes) -> bool:
        if not self.open:
            return False
        self.raw.append(frame)
        return True

    def texts(self) -> list[str]:
        return [message["text"] for message in self.sent if message["type"] == "websocket.send"]

    async def settle(self) -> None:
        """Wait for every task the runner started (a drain starts another)."""
        while pending := [task for task in self.runner.tasks if not task.done()]:
            await asyncio.wait_for(asyncio.gather(*pending), TIMEOUT)


@pytest.fixture
async def world(monkeypatch):
    made = World(asyncio.get_running_loop())
    monkeypatch.setattr(runner, "get_fanout", lambda: made.fanout)
    return made


def arrive(to: runner.Runner, event: dict) -> None:
    """The fan-out hands an update to the connection, with the frame built from the update's own text."""
    to.market_event(event, _Frame(event["text"]), market_sub_of(event))


def subscribed(world: World, seq: int) -> None:
    """The session holds the BTCUSDT ticker at `seq` (its ack and snapshot were sent)."""
    actions = world.session.receive('{"type":"subscribe_ticker","symbols":["BTCUSDT"]}', 0, ENABLED)
    (load,) = [action for action in actions if isinstance(action, LoadPositions)]
    world.session.positions_loaded(load, [Loaded(BTC, EPOCH, seq)])
    world.session.last_sent = -1.0


# --- updates arriving while the connection is busy ---------------------------------------------------------


async def test_updates_arriving_while_a_subscribe_is_answered_follow_its_ack_and_snapshot_in_order(world, monkeypatch):
    world.runner.write_frame = world.write_frame
    snapshot = protocol.encode({**messages.ticker("BTCUSDT", "5"), "seq": 5})

    async def load(subs, since, user_id):
        for seq in (4, 5, 6):  # 4 and 5: the snapshot already holds them
            arrive(world.runner, update(seq))
        return [Loaded(sub, EPOCH, 5) for sub in subs]

    async def snapshots(subs, user_id):
        arrive(world.runner, update(7))
        return {BTC: [snapshot]}

    monkeypatch.setattr(recovery, "load", load)
    monkeypatch.setattr(providers, "snapshots", snapshots)

    await world.runner.run(world.session.receive('{"type":"subscribe_ticker","symbols":["BTCUSDT"]}', 0, ENABLED))

    texts = world.texts()
    ack = orjson.loads(texts[0])
    assert (ack["type"], ack["positions"]) == ("subscribed", {"BTCUSDT": {"epoch": EPOCH, "seq": 5}})
    assert texts[1:] == [snapshot, update(6)["text"], update(7)["text"]]
    assert world.raw == []  # held updates go out behind the ack, through the runner
    assert (world.runner.busy, world.runner.held) == (0, [])
    assert world.fanout.changes == [("join", GROUP, world.runner)]


async def test_an_update_waits_while_the_runner_is_busy_and_is_handed_over_after():
    loop = asyncio.get_running_loop()
    w = World(loop)
    subscribed(w, 1)
    release = asyncio.Event()

    async def slow_send(message: dict) -> None:
        await release.wait()
        w.sent.append(message)

    w.runner.send = slow_send
    busy = loop.create_task(w.runner.run(w.session.reply(protocol.pong())))
    await asyncio.sleep(0)  # the pong is being written
    assert w.runner.busy == 1

    arrive(w.runner, update(2))
    arrive(w.runner, update(3))
    assert w.runner.held == [update(2), update(3)]
    assert w.sent == []

    release.set()
    await asyncio.wait_for(busy, TIMEOUT)

    assert [orjson.loads(text)["type"] for text in w.texts()] == ["pong", "ticker", "ticker"]
    assert w.texts()[1:] == [update(2)["text"], update(3)["text"]]
    assert w.runner.held == []


# --- the fast path: one frame for every connection, written as it is ------------------------------------------


async def test_an_update_sent_at_once_is_written_as_the_shared_frame(world):
    subscribed(world, 1)
    world.runner.write_frame = world.write_frame
    event = update(2)
    frame = _Frame(event["text"])
    written = world.runner.market_event(event, frame, market_sub_of(event))

    assert written  # the fan-out counts the writes of an update once (realtime.fanout)
    assert world.raw == [text_frame(event["text"].encode())]
    assert world.raw[0] is frame.bytes()  # the one built for every connection
    assert world.sent == []
    assert world.runner.tasks == []
    assert world.session.last_sent >= 0  # the heartbeat's silence timer restarts
    assert world.session.delivered[BTC] == (EPOCH, 2)


async def test_an_update_the_session_drops_is_neither_written_nor_scheduled(world):
    subscribed(world, 5)
    world.runner.write_frame = world.write_frame

    arrive(world.runner, update(5))  # not newer than the position
    world.runner.busy = 1  # answering its client: the update waits, and then the session's check applies
    arrive(world.runner, update(6, "ETHUSDT"))  # not subscribed (any more)
    world.runner.busy = 0
    await world.runner.run([])

    assert (world.raw, world.sent, world.runner.tasks) == ([], [], [])


async def test_a_connection_that_closed_refuses_the_raw_write_and_nothing_else_happens(world):
    subscribed(world, 1)
    world.runner.write_frame = world.write_frame
    world.open = False
    counted = metrics.MESSAGES_OUT.labels(type="ticker")._value.get()

    arrive(world.runner, update(2))

    assert (world.raw, world.sent, world.runner.tasks) == ([], [], [])
    assert world.session.last_sent == -1.0  # nothing was written
    assert metrics.MESSAGES_OUT.labels(type="ticker")._value.get() == counted


async def test_an_update_for_a_msgpack_connection_is_written_as_the_shared_binary_frame():
    w = World(asyncio.get_running_loop(), binary=True)
    subscribed(w, 1)
    w.runner.write_frame = w.write_frame
    event = update(2)
    frame = _Frame(event["text"])

    assert w.runner.market_event(event, frame, market_sub_of(event))

    assert w.raw == [binary_frame(wire.packed(event["text"]))]
    assert w.raw[0] is frame.binary()
    assert (w.sent, w.runner.tasks) == ([], [])


# --- the fallback: the runner carries out what the session answered ------------------------------------------


async def test_without_a_raw_writer_the_update_is_sent_through_the_server(world):
    subscribed(world, 1)
    assert world.runner.write_frame is None  # another server, or compression negotiated

    arrive(world.runner, update(2))
    await world.settle()

    assert world.texts() == [update(2)["text"]]
    assert world.raw == []


async def test_an_update_for_a_slow_client_is_queued_and_drained_through_the_server(world):
    subscribed(world, 1)
    world.runner.write_frame = world.write_frame
    world.buffered = flow.HIGH_WATER  # the client stopped reading

    arrive(world.runner, update(2))
    arrive(world.runner, update(3))  # replaces 2, still waiting
    world.buffered = 0
    await world.settle()

    assert world.texts() == [update(3)["text"]]
    assert world.raw == []


async def test_tasks_that_finished_are_not_kept(world):
    subscribed(world, 1)
    world.runner.write_frame = world.write_frame
    for seq in range(2, 6):  # each queued, then drained by a task of its own
        world.buffered = flow.HIGH_WATER
        arrive(world.runner, update(seq))
        world.buffered = 0
        await world.settle()
        await asyncio.sleep(0)  # the done callbacks run

    assert world.texts() == [update(seq)["text"] for seq in range(2, 6)]
    assert world.runner.tasks == []


async def test_an_update_whose_answer_is_another_text_goes_through_the_runner(world):
    subscribed(world, 1)
    world.runner.write_frame = world.write_frame
    event = update(2)
    frame = _Frame("".join(event["text"]))  # equal, but not the text the session answers with
    assert frame.text == event["text"] and frame.text is not event["text"]

    world.runner.market_event(event, frame, market_sub_of(event))
    await world.settle()

    assert world.texts() == [event["text"]]
    assert world.raw == []


# --- updates that waited together, for a ?batch=1 connection -------------------------------------------------


def waited(*seqs: int) -> list[tuple]:
    """Updates as the fan-out hands over those that waited together: (event, shared frame, subscription)."""
    return [(event, _Frame(event["text"]), market_sub_of(event)) for event in map(update, seqs)]


def array_of(*events: dict) -> bytes:
    return text_frame(("[" + ",".join(event["text"] for event in events) + "]").encode())


async def test_updates_that_waited_together_are_one_array_frame_built_once_for_every_connection():
    loop = asyncio.get_running_loop()
    first, second = World(loop, batch=True), World(loop, batch=True)
    arrays: dict = {}
    updates = waited(2, 3, 4)
    for w in (first, second):
        subscribed(w, 1)
        w.runner.write_frame = w.write_frame
        assert w.runner.batch

        assert w.runner.market_events(updates, arrays)

    assert first.raw == [array_of(update(2), update(3), update(4))]
    assert second.raw[0] is first.raw[0]  # framed once for both
    assert orjson.loads(first.raw[0][4:]) == [orjson.loads(update(seq)["text"]) for seq in (2, 3, 4)]
    assert (first.sent, first.runner.tasks) == ([], [])
    assert first.session.delivered[BTC] == (EPOCH, 4)
    assert first.session.last_sent >= 0


async def test_updates_that_waited_together_for_a_msgpack_connection_are_one_binary_array():
    w = World(asyncio.get_running_loop(), batch=True, binary=True)
    subscribed(w, 1)
    w.runner.write_frame = w.write_frame

    assert w.runner.market_events(waited(2, 3), {})

    assert w.raw == [
        binary_frame(wire.array_header(2) + wire.packed(update(2)["text"]) + wire.packed(update(3)["text"]))
    ]


async def test_updates_that_waited_while_the_connection_was_busy_are_held_and_sent_as_one_array_after():
    loop = asyncio.get_running_loop()
    w = World(loop, batch=True)
    subscribed(w, 1)
    w.runner.write_frame = w.write_frame
    w.runner.busy = 1

    assert not w.runner.market_events(waited(2, 3), {})
    assert w.runner.held == [update(2), update(3)]
    w.runner.busy = 0
    await w.runner.run([])

    assert w.texts() == ["[" + update(2)["text"] + "," + update(3)["text"] + "]"]
    assert w.raw == []


async def test_waiting_updates_of_which_one_was_already_sent_go_through_the_runner_without_it():
    loop = asyncio.get_running_loop()
    w = World(loop, batch=True)
    subscribed(w, 2)
    w.runner.write_frame = w.write_frame

    assert not w.runner.market_events(waited(2, 3, 4), {})  # 2: the position already holds it
    await w.settle()

    assert w.texts() == ["[" + update(3)["text"] + "," + update(4)["text"] + "]"]
    assert w.raw == []
    assert w.runner.tasks == []  # the task that sent them is forgotten once done


async def test_waiting_updates_for_a_slow_batched_client_are_queued_conflated_and_drained():
    loop = asyncio.get_running_loop()
    w = World(loop, batch=True)
    subscribed(w, 1)
    w.runner.write_frame = w.write_frame
    w.buffered = flow.HIGH_WATER

    assert not w.runner.market_events(waited(2, 3), {})
    w.buffered = 0
    await w.settle()

    assert w.raw == []
    assert w.texts() == [update(3)["text"]]  # the newer price replaced the older one in the outbox


# --- the rest of the session's actions ------------------------------------------------------------------------


class Layer:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str, str]] = []

    async def group_add(self, group: str, channel: str) -> None:
        self.changes.append(("add", group, channel))

    async def group_discard(self, group: str, channel: str) -> None:
        self.changes.append(("discard", group, channel))


class Registry:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def set_subscriptions(self, conn_id: str, count: int) -> None:
        self.calls.append(("subscriptions", conn_id, count))

    async def release(self, conn_id: str) -> None:
        self.calls.append(("release", conn_id))


@pytest.fixture
async def trading(monkeypatch):
    made = World(asyncio.get_running_loop(), Endpoint.TRADING)
    made.session.admitted(USER_ID, None)
    made.layer, made.registry = Layer(), Registry()
    monkeypatch.setattr(runner, "get_fanout", lambda: made.fanout)
    monkeypatch.setattr(runner, "get_channel_layer", lambda alias: made.layer)
    monkeypatch.setattr(runner, "get_registry", lambda: made.registry)
    return made


async def test_a_channel_subscribe_joins_the_users_group_loads_the_position_acks_and_counts(trading, monkeypatch):
    async def load(subs, since, user_id):
        assert user_id == USER_ID
        return [Loaded(sub, "e", 3) for sub in subs]

    monkeypatch.setattr(recovery, "load", load)
    trading.runner.registered = True

    await trading.runner.run(trading.session.receive('{"type":"subscribe","channels":["risk_alerts"]}', 0, ENABLED))

    assert trading.layer.changes == [("add", groups.user(USER_ID, "risk_alerts"), "trading!c1")]
    (ack,) = [orjson.loads(text) for text in trading.texts()]
    assert ack["positions"] == {"risk_alerts": {"epoch": "e", "seq": 3}}
    assert trading.registry.calls == [("subscriptions", "c1", 1)]


async def test_the_count_is_not_written_for_a_connection_that_holds_no_registry_place(trading):
    await trading.runner.run(trading.session.receive('{"type":"unsubscribe","channels":["orders"]}', 0, ENABLED))

    assert orjson.loads(trading.texts()[0])["type"] == "unsubscribed"
    assert trading.registry.calls == []


async def test_a_gap_is_read_back_and_handed_to_the_session(trading, monkeypatch):
    session = trading.session
    load = session.receive('{"type":"subscribe","channels":["risk_alerts"]}', 0, ENABLED)[1]
    session.positions_loaded(load, [Loaded(UserSub("risk_alerts"), "e", 3)])
    texts = [protocol.encode({**messages.risk_alert(), "seq": n}) for n in (4, 5)]
    asked = []

    async def gap(action, user_id):
        asked.append((action, user_id))
        return texts

    monkeypatch.setattr(recovery, "gap", gap)
    event = {"type": protocol.USER_EVENT, "text": "{}", "channel": "risk_alerts", "seq": 5, "epoch": "e"}

    await trading.runner.run(session.event(event, 0))

    assert asked == [(FillGap(UserSub("risk_alerts"), "e", 3, 5), USER_ID)]
    assert trading.texts() == texts


async def test_a_refresh_checks_the_token_and_answers(trading, monkeypatch):
    checked = []
    monkeypatch.setattr(runner, "validate_access_token", lambda token: checked.append(token) or (USER_ID, None, ""))

    await trading.runner.run(trading.session.receive('{"type":"refresh","token":"t"}', 0, ENABLED))

    assert checked == ["t"]
    reply = orjson.loads(trading.texts()[0])
    assert (reply["type"], reply["expires_at"]) == ("refreshed", "never")


async def test_a_close_is_sent_after_its_error_frame(world):
    await world.runner.run(world.session.close(4029, "bye"))

    assert [message["type"] for message in world.sent] == ["websocket.send", "websocket.close"]
    assert world.sent[1] == {"type": "websocket.close", "code": 4029, "reason": "bye"}


async def test_keepalive_sends_a_heartbeat_after_each_silence_and_end_stops_it_and_leaves_everything(monkeypatch):
    made = World(asyncio.get_running_loop(), Endpoint.TRADING, heartbeat=0.05)
    made.session.admitted(USER_ID, None)
    made.layer, made.registry = Layer(), Registry()
    monkeypatch.setattr(runner, "get_fanout", lambda: made.fanout)
    monkeypatch.setattr(runner, "get_channel_layer", lambda alias: made.layer)
    monkeypatch.setattr(runner, "get_registry", lambda: made.registry)
    made.session.receive('{"type":"subscribe_symbol","symbols":["BTCUSDT"]}', 0, ENABLED)
    made.runner.registered = True
    beats = asyncio.Semaphore(0)

    async def send(message: dict) -> None:
        made.sent.append(message)
        beats.release()

    made.runner.send = send
    made.runner.start_keepalive()
    for _ in range(2):  # the timer is armed again after each heartbeat
        await asyncio.wait_for(beats.acquire(), TIMEOUT)
    assert [orjson.loads(text)["type"] for text in made.texts()] == ["heartbeat", "heartbeat"]

    await made.runner.end()
    await asyncio.sleep(0.2)  # four intervals of silence

    assert len(made.sent) == 2
    assert made.fanout.changes == [("leave", GROUP, made.runner)]
    assert made.layer.changes == [("discard", groups.user_connections(USER_ID), "trading!c1")]
    assert made.registry.calls == [("release", "c1")]
    assert made.session.closed


async def test_an_idle_connections_keepalive_is_a_timer_not_a_task(world):
    world.runner.start_keepalive()

    assert isinstance(world.runner.timer, asyncio.TimerHandle)
    assert world.runner.tasks == []
    await world.runner.end()
    assert world.runner.timer.cancelled()


async def test_keepalive_waits_again_when_a_frame_broke_the_silence_before_the_deadline(monkeypatch):
    made = World(asyncio.get_running_loop(), heartbeat=0.5)
    monkeypatch.setattr(runner, "get_fanout", lambda: made.fanout)
    made.runner.start_keepalive()
    first = made.runner.timer
    await asyncio.sleep(0.3)
    made.session.sent(made.runner.loop.time())  # a frame went out: the silence starts again
    await asyncio.sleep(0.3)  # past the first deadline, not past the second

    assert made.sent == []
    assert made.runner.timer is not first and isinstance(made.runner.timer, asyncio.TimerHandle)
    await made.runner.end()


async def test_end_of_a_connection_that_was_refused_gives_back_no_place(trading):
    await trading.runner.end()

    assert trading.registry.calls == []
    assert trading.layer.changes == [("discard", groups.user_connections(USER_ID), "trading!c1")]


async def test_keepalive_closes_a_connection_whose_token_expired_and_then_stops(trading):
    trading.session.expires_at = time.time() - 1

    trading.runner.start_keepalive()
    await asyncio.sleep(0.05)  # the deadline is now: the close goes out, and nothing is armed again

    assert [message["type"] for message in trading.sent] == ["websocket.send", "websocket.close"]
    assert orjson.loads(trading.texts()[0])["code"] == Code.AUTH_FAILED
    assert trading.sent[1]["code"] == Code.AUTH_FAILED
    assert trading.runner.timer.done()  # the task that closed it, with no timer after it
