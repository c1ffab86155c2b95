"""The consumers' event loop: every source (the socket, each channel layer) into one inbox, handled in order.

Channels' `await_many_dispatch` creates a task and an `asyncio.wait` per event per connection, which
profiled as a quarter of the fan-out cost (docs/BENCHMARKS.md); here each source has one long-lived
task that feeds a single inbox, and handlers still never run concurrently. A connection whose only
source is its socket (/ws/market: market data comes through realtime.fanout) needs neither:
`dispatch_socket` reads the socket in the connection's own task, so an idle one holds no task of ours.
"""

from __future__ import annotations

import asyncio
import dataclasses

from realtime import metrics
from realtime.inbox import Inbox

OVERFLOW = "websocket.overflow"  # the client's frames piled up past the bound: it is flooding


async def dispatch_in_order(sources: list, dispatch, dispatch_layer_events=None, max_waiting_frames=None) -> None:
    """Dispatch events from every source one at a time, in arrival order, until a handler raises.

    With `dispatch_layer_events`, channel-layer events that are already waiting together are handed
    over in one call (so a batched connection can write them as one frame); nothing waits for more.
    With `max_waiting_frames`, at most that many client frames wait in front of the flood guard: past
    it they are dropped and one OVERFLOW event is handed over instead, so a flood cannot grow memory.
    """
    inbox = Inbox()
    waiting = [0]  # client frames in the inbox

    def put_client_frame(event) -> None:
        if max_waiting_frames is not None and waiting[0] >= max_waiting_frames:
            if waiting[0] == max_waiting_frames:
                inbox.put({"type": OVERFLOW})
                waiting[0] += 1  # one OVERFLOW until the dispatcher catches up
            return
        waiting[0] += 1
        inbox.put(event)

    async def pump(source) -> None:
        try:
            while True:
                event = await source()
                if isinstance(event, dict) and event.get("type") == "websocket.receive":
                    put_client_frame(event)
                elif inbox.put(event):
                    metrics.INBOX_CONFLATIONS.inc()
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # a failing source ends the connection, as with Channels
            inbox.put(_Failed(error))

    pumps = [asyncio.create_task(pump(source)) for source in sources]
    try:
        while True:
            event = await inbox.get()
            if isinstance(event, _Failed):
                raise event.error
            if isinstance(event, dict) and event.get("type") in ("websocket.receive", OVERFLOW):
                waiting[0] = max(0, waiting[0] - 1)
            more = inbox.take_ready(_from_a_layer) if dispatch_layer_events and _from_a_layer(event) else []
            if more:
                await dispatch_layer_events([event, *more])
            else:
                await dispatch(event)
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


async def dispatch_socket(receive, dispatch, max_waiting_frames: int) -> None:
    """Dispatch the socket's events one at a time, in order, until a handler raises.

    The same bound as `dispatch_in_order`'s: at most `max_waiting_frames` client frames wait while a
    handler is busy; past it they are dropped and one OVERFLOW event is handed over instead. Frames
    wait only while a handler is suspended, so only then does a reader task take them off the socket;
    otherwise this task awaits `receive` itself, and an idle connection costs one pending receive.
    """
    waiting = _Waiting(max_waiting_frames)
    while True:
        event = waiting.take() if waiting else await receive()
        reader = asyncio.create_task(waiting.read(receive))  # starts only if the handler suspends
        try:
            await dispatch(event)
        finally:
            # Safe with daphne's receive, an asyncio.Queue's get: a cancelled get leaves its event queued.
            reader.cancel()
            # Held while idle, a cancelled reader would keep its frames (its CancelledError's traceback).
            del event, reader


class _Waiting:
    """The socket's events that arrived while a handler was busy, bounded as `dispatch_socket` says."""

    __slots__ = ("bound", "events", "frames")

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.events: list = []  # short: at most `bound` frames, and the rare connect or disconnect
        self.frames = 0  # client frames (or the one OVERFLOW standing for them) in `events`

    def __bool__(self) -> bool:
        return bool(self.events)

    def put(self, event) -> None:
        if not _is_client_frame(event):
            self.events.append(event)
        elif self.frames < self.bound:
            self.frames += 1
            self.events.append(event)
        elif self.frames == self.bound:
            self.frames += 1  # one OVERFLOW until the handler catches up
            self.events.append({"type": OVERFLOW})

    def take(self):
        event = self.events.pop(0)
        if isinstance(event, _Failed):
            raise event.error
        if _is_client_frame(event) or event.get("type") == OVERFLOW:
            self.frames -= 1
        return event

    async def read(self, receive) -> None:
        try:
            while True:
                self.put(await receive())
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # a failing socket ends the connection once it is its turn
            self.events.append(_Failed(error))


def _is_client_frame(event) -> bool:
    return isinstance(event, dict) and event.get("type") == "websocket.receive"


def _from_a_layer(event) -> bool:
    return isinstance(event, dict) and not event.get("type", "").startswith("websocket.")


@dataclasses.dataclass(frozen=True)
class _Failed:
    error: BaseException
