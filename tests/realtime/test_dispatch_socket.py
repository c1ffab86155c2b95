"""realtime.dispatch.dispatch_socket: a socket's events handled one at a time, in order, with no task of
its own while idle, and the frames that pile up behind a busy handler bounded."""

from __future__ import annotations

import asyncio
import gc

import pytest

from realtime.dispatch import OVERFLOW, dispatch_socket
from tests.support import TIMEOUT


class Stop(Exception):
    """Raised by a handler to end the loop (as StopConsumer does on a disconnect)."""


def readers_alive() -> list[asyncio.Task]:
    """Reader tasks still referenced (earlier tests' unreferenced ones are collected first)."""
    gc.collect()
    tasks = [obj for obj in gc.get_objects() if type(obj) is asyncio.Task]  # type(): no lazy object evaluated
    return [task for task in tasks if task.get_coro().__qualname__ == "_Waiting.read"]


def frame(n: int) -> dict:
    return {"type": "websocket.receive", "text": str(n)}


class Busy:
    """A handler that stays busy with the first event until released, recording what it handled."""

    def __init__(self) -> None:
        self.handled: list[dict] = []
        self.started, self.release = asyncio.Event(), asyncio.Event()
        self.active = self.most_at_once = 0

    async def __call__(self, event: dict) -> None:
        self.active += 1
        self.most_at_once = max(self.most_at_once, self.active)
        try:
            if not self.handled and not self.release.is_set():
                self.started.set()
                await self.release.wait()
            self.handled.append(event)
            if event.get("stop"):
                raise Stop
        finally:
            self.active -= 1


async def busy_with_the_first_frame() -> tuple[asyncio.Queue, Busy, asyncio.Task]:
    """A socket, a handler holding on to its first frame, and the dispatch loop between them (bound 10)."""
    socket: asyncio.Queue = asyncio.Queue()
    handler = Busy()
    socket.put_nowait(frame(0))
    loop = asyncio.create_task(asyncio.wait_for(dispatch_socket(socket.get, handler, 10), TIMEOUT))
    await asyncio.wait_for(handler.started.wait(), TIMEOUT)
    return socket, handler, loop


async def test_frames_arriving_while_a_handler_is_busy_are_handled_after_it_in_order():
    socket, handler, loop = await busy_with_the_first_frame()
    for n in range(1, 5):
        socket.put_nowait(frame(n))
        await asyncio.sleep(0)
    socket.put_nowait({"type": "websocket.disconnect", "stop": True})
    handler.release.set()

    with pytest.raises(Stop):
        await loop

    assert [event.get("text") for event in handler.handled] == ["0", "1", "2", "3", "4", None]
    assert handler.most_at_once == 1


async def test_a_burst_behind_a_busy_handler_is_cut_at_the_bound_with_one_overflow():
    socket, handler, loop = await busy_with_the_first_frame()
    for n in range(1, 101):
        socket.put_nowait(frame(n))
    socket.put_nowait({"type": "websocket.disconnect", "stop": True})
    await asyncio.sleep(0.01)  # the reader takes the whole burst while the first frame is handled
    handler.release.set()

    with pytest.raises(Stop):
        await loop

    types = [event["type"] for event in handler.handled]
    assert types == ["websocket.receive"] * 11 + [OVERFLOW, "websocket.disconnect"]
    assert [event["text"] for event in handler.handled[:11]] == [str(n) for n in range(11)]  # in hand, then 10


async def test_an_idle_connection_holds_no_task_besides_its_own():
    socket: asyncio.Queue = asyncio.Queue()
    handled: list[dict] = []

    async def handler(event: dict) -> None:
        await asyncio.sleep(0)  # suspended: a reader takes what arrives meanwhile, and is gone after
        handled.append(event)

    socket.put_nowait(frame(0))
    before = len(asyncio.all_tasks())
    loop = asyncio.create_task(dispatch_socket(socket.get, handler, 10))
    for _ in range(5):
        await asyncio.sleep(0)

    assert handled == [frame(0)]
    assert len(asyncio.all_tasks()) == before + 1  # the dispatcher itself, waiting on the socket
    assert readers_alive() == []  # not even a cancelled one, kept by a reference
    loop.cancel()


async def test_no_event_is_lost_or_reordered_when_handlers_sometimes_suspend():
    socket: asyncio.Queue = asyncio.Queue()
    handled: list[int] = []

    async def handler(event: dict) -> None:
        n = int(event["text"])
        for _ in range(n % 3):  # some handlers finish at once, others wait for the loop
            await asyncio.sleep(0)
        handled.append(n)
        if n == 199:
            raise Stop

    loop = asyncio.create_task(asyncio.wait_for(dispatch_socket(socket.get, handler, 1000), TIMEOUT))
    for n in range(200):
        socket.put_nowait(frame(n))
        for _ in range(n % 4):
            await asyncio.sleep(0)

    with pytest.raises(Stop):
        await loop

    assert handled == list(range(200))


async def test_a_failing_handler_ends_the_loop_with_its_error_and_leaves_no_reader_behind():
    socket: asyncio.Queue = asyncio.Queue()

    async def failing(event: dict) -> None:
        await asyncio.sleep(0)  # suspended: a reader was started
        raise ValueError("handler failed")

    socket.put_nowait(frame(0))
    before = asyncio.all_tasks()
    with pytest.raises(ValueError, match="handler failed"):
        await asyncio.wait_for(dispatch_socket(socket.get, failing, 10), TIMEOUT)
    await asyncio.sleep(0)

    assert asyncio.all_tasks() <= before


async def test_a_socket_failing_while_a_handler_is_busy_ends_the_loop_after_what_arrived_before_it():
    socket: asyncio.Queue = asyncio.Queue()
    handler = Busy()

    async def receive() -> dict:
        item = await socket.get()
        if isinstance(item, BaseException):
            raise item
        return item

    socket.put_nowait(frame(0))
    loop = asyncio.create_task(asyncio.wait_for(dispatch_socket(receive, handler, 10), TIMEOUT))
    await asyncio.wait_for(handler.started.wait(), TIMEOUT)
    socket.put_nowait(frame(1))
    socket.put_nowait(ConnectionError("the socket went away"))
    socket.put_nowait(frame(2))
    await asyncio.sleep(0.01)
    handler.release.set()

    with pytest.raises(ConnectionError, match="went away"):
        await loop

    assert handler.handled == [frame(0), frame(1)]
