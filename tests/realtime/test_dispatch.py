"""realtime.dispatch: events from every source handled one at a time, in arrival order, until something fails."""

from __future__ import annotations

import asyncio

import pytest

from realtime.dispatch import dispatch_in_order
from tests.support import TIMEOUT


class Stop(Exception):
    """Raised by a handler to end the loop (as StopConsumer does on a disconnect)."""


class Arrivals(list):
    """Events in the order they reached the inbox; `reach(n)` waits until n have."""

    def __init__(self) -> None:
        super().__init__()
        self.grew = asyncio.Event()

    def append(self, item) -> None:
        super().append(item)
        self.grew.set()

    async def reach(self, count: int) -> None:
        async def grown() -> None:
            while len(self) < count:
                self.grew.clear()
                await self.grew.wait()

        await asyncio.wait_for(grown(), TIMEOUT)


class Source:
    """A receive callable fed by the test; it records the order in which events reached the inbox.

    The pump puts what a source returns into the inbox with no await in between, so the order of
    `arrivals` is the inbox's order.
    """

    def __init__(self, name: str, arrivals: Arrivals) -> None:
        self.name = name
        self.queue: asyncio.Queue = asyncio.Queue()
        self.arrivals = arrivals
        self.cancelled = asyncio.Event()

    async def __call__(self):
        try:
            await asyncio.sleep(0)  # like a real receive, give the other sources a turn
            item = await self.queue.get()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        if isinstance(item, BaseException):
            raise item
        self.arrivals.append(item)
        return item


class Handler:
    """Records what it handles, yields to the loop inside each event, and stops on {"stop": True}."""

    def __init__(self) -> None:
        self.handled: list = []
        self.active = 0
        self.most_at_once = 0

    async def __call__(self, event) -> None:
        self.active += 1
        self.most_at_once = max(self.most_at_once, self.active)
        try:
            for _ in range(3):
                await asyncio.sleep(0)  # other sources get their turn while this event is handled
            self.handled.append(event)
            if event.get("stop"):
                raise Stop
        finally:
            self.active -= 1


def message(source: str, n: int, **fields) -> dict:
    return {"type": f"{source}.message", "n": n, **fields}


async def run(sources: list[Source], handler: Handler) -> None:
    await asyncio.wait_for(dispatch_in_order(sources, handler), TIMEOUT)


async def test_events_from_several_sources_are_handled_one_at_a_time_in_arrival_order():
    arrivals = Arrivals()
    socket, layer = Source("socket", arrivals), Source("layer", arrivals)
    handler = Handler()
    for n in range(20):
        (socket if n % 3 else layer).queue.put_nowait(message("socket" if n % 3 else "layer", n))

    loop = asyncio.create_task(run([socket, layer], handler))
    await arrivals.reach(20)
    layer.queue.put_nowait(message("layer", 20, stop=True))
    with pytest.raises(Stop):
        await loop

    assert {event["type"] for event in arrivals[:4]} == {"socket.message", "layer.message"}  # interleaved
    assert len(handler.handled) == 21
    assert handler.handled == arrivals
    assert handler.most_at_once == 1


async def test_a_failing_source_ends_the_loop_with_its_error_after_what_arrived_before_it():
    arrivals = Arrivals()
    socket, layer = Source("socket", arrivals), Source("layer", arrivals)
    handler = Handler()
    socket.queue.put_nowait(message("socket", 1))
    socket.queue.put_nowait(ConnectionError("the layer went away"))

    with pytest.raises(ConnectionError, match="went away"):
        await run([socket, layer], handler)

    assert handler.handled == [message("socket", 1)]


async def test_when_the_loop_ends_every_pump_is_cancelled_and_awaited():
    arrivals = Arrivals()
    socket, layer, market = Source("socket", arrivals), Source("layer", arrivals), Source("market", arrivals)
    socket.queue.put_nowait(message("socket", 1, stop=True))

    with pytest.raises(Stop):
        await run([socket, layer, market], Handler())

    assert socket.cancelled.is_set()
    assert layer.cancelled.is_set()
    assert market.cancelled.is_set()


async def test_a_failing_handler_ends_the_loop_with_its_error_and_cancels_the_pumps():
    arrivals = Arrivals()
    socket = Source("socket", arrivals)

    async def failing(event) -> None:
        raise ValueError("handler failed")

    socket.queue.put_nowait(message("socket", 1))
    with pytest.raises(ValueError, match="handler failed"):
        await asyncio.wait_for(dispatch_in_order([socket], failing), TIMEOUT)

    assert socket.cancelled.is_set()


async def test_a_newer_price_waiting_behind_a_busy_handler_replaces_the_older_one():
    arrivals = Arrivals()
    socket, layer = Source("socket", arrivals), Source("layer", arrivals)
    busy = asyncio.Event()
    release = asyncio.Event()
    handled: list = []

    async def handler(event) -> None:
        if event["n"] == 0:
            busy.set()
            await release.wait()
        handled.append(event)
        if event.get("stop"):
            raise Stop

    socket.queue.put_nowait(message("socket", 0))
    loop = asyncio.create_task(asyncio.wait_for(dispatch_in_order([socket, layer], handler), TIMEOUT))
    await asyncio.wait_for(busy.wait(), TIMEOUT)
    layer.queue.put_nowait(message("layer", 1, key="ticker:BTCUSDT"))
    layer.queue.put_nowait(message("layer", 2, key="ticker:BTCUSDT"))
    layer.queue.put_nowait(message("layer", 3, stop=True))
    await arrivals.reach(4)  # all in the inbox while the first is still being handled
    release.set()
    with pytest.raises(Stop):
        await loop

    assert [event["n"] for event in handled] == [0, 2, 3]


class Recorder:
    """Both handlers: what each call got, in order ("one" for dispatch, "many" for dispatch_layer_events)."""

    def __init__(self, started: asyncio.Event | None = None, release: asyncio.Event | None = None) -> None:
        self.calls: list[tuple[str, object]] = []
        self.started, self.release = started, release

    async def one(self, event) -> None:
        self.calls.append(("one", event))
        if self.release is not None and not self.release.is_set():
            self.started.set()
            await self.release.wait()  # busy with the first event while the others arrive
        if event.get("stop"):
            raise Stop

    async def many(self, events) -> None:
        self.calls.append(("many", events))
        if any(event.get("stop") for event in events):
            raise Stop

    def order(self) -> list:
        return [e["n"] for kind, got in self.calls for e in (got if kind == "many" else [got])]


async def run_with_layer_events(sources: list[Source], recorder: Recorder) -> None:
    await asyncio.wait_for(dispatch_in_order(sources, recorder.one, recorder.many), TIMEOUT)


async def fill_while_busy(socket: Source, layer: Source, arrivals: Arrivals, later: list[tuple[Source, dict]]):
    """The first socket event keeps the handler busy until `later` all reached the inbox, in that order."""
    started, release = asyncio.Event(), asyncio.Event()
    recorder = Recorder(started, release)
    socket.queue.put_nowait(message("websocket", 0))
    loop = asyncio.create_task(run_with_layer_events([socket, layer], recorder))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    for count, (source, item) in enumerate(later, start=2):
        source.queue.put_nowait(item)
        await arrivals.reach(count)  # one by one, so the inbox holds them in the listed order
    release.set()
    with pytest.raises(Stop):
        await loop
    return recorder


async def test_layer_events_already_waiting_together_are_handed_over_in_one_call():
    arrivals = Arrivals()
    socket, layer = Source("socket", arrivals), Source("layer", arrivals)

    recorder = await fill_while_busy(
        socket,
        layer,
        arrivals,
        [(layer, message("layer", n)) for n in (1, 2, 3)] + [(layer, message("layer", 4, stop=True))],
    )

    assert [(kind, [e["n"] for e in got] if kind == "many" else got["n"]) for kind, got in recorder.calls] == [
        ("one", 0),
        ("many", [1, 2, 3, 4]),
    ]


async def test_socket_events_are_never_merged_and_split_the_layer_events_around_them():
    arrivals = Arrivals()
    socket, layer = Source("socket", arrivals), Source("layer", arrivals)
    later = [
        (layer, message("layer", 1)),
        (layer, message("layer", 2)),
        (socket, message("websocket", 3)),
        (socket, message("websocket", 4)),
        (layer, message("layer", 5)),
        (layer, message("layer", 6, stop=True)),
    ]

    recorder = await fill_while_busy(socket, layer, arrivals, later)

    assert [(kind, [e["n"] for e in got] if kind == "many" else got["n"]) for kind, got in recorder.calls] == [
        ("one", 0),
        ("many", [1, 2]),
        ("one", 3),
        ("one", 4),
        ("many", [5, 6]),
    ]
    assert recorder.order() == [e["n"] for e in arrivals]


async def test_a_layer_event_with_nothing_waiting_behind_it_goes_to_dispatch_alone():
    arrivals = Arrivals()
    socket, layer = Source("socket", arrivals), Source("layer", arrivals)
    recorder = Recorder()
    layer.queue.put_nowait(message("layer", 1))
    loop = asyncio.create_task(run_with_layer_events([socket, layer], recorder))
    await arrivals.reach(1)
    layer.queue.put_nowait(message("layer", 2, stop=True))

    with pytest.raises(Stop):
        await loop

    assert [kind for kind, _ in recorder.calls] == ["one", "one"]
    assert recorder.order() == [1, 2]


async def test_waiting_prices_are_conflated_before_they_are_handed_over_together():
    arrivals = Arrivals()
    socket, layer = Source("socket", arrivals), Source("layer", arrivals)
    later = [
        (layer, message("layer", 1, key="ticker:BTCUSDT")),
        (layer, message("layer", 2, key="ticker:ETHUSDT")),
        (layer, message("layer", 3, key="ticker:BTCUSDT")),
        (layer, message("layer", 4, stop=True)),
    ]

    recorder = await fill_while_busy(socket, layer, arrivals, later)

    assert recorder.order() == [0, 3, 2, 4]  # the newer BTC price in the older one's place
