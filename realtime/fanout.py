"""One fan-out per process for market data, instead of a queue, a task and a dispatch per connection.

Every market update reaches this process once (channels-redis's pub/sub layer: one subscription per
group, on one channel of the process's own), is deserialised once, framed as a WebSocket text frame
once, and written to each subscribed connection's transport, as a bare `websockets.broadcast` does.
A connection's session still decides, per update, whether it is written now, conflated or queued in
its outbox (a slow client), so nothing about backpressure changes; only the per-connection work does.

While a connection is busy answering its client (a subscribe waiting for its snapshot or history
position), updates for it are held and handed over when it is done, so its ack and snapshot always
come before the live updates that follow them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from channels.layers import get_channel_layer

from realtime import groups, metrics, wire
from realtime.inbox import Inbox
from realtime.session import market_sub_of

logger = logging.getLogger(__name__)


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 5.2), as a server sends it."""
    return _frame(0x81, payload)


def binary_frame(payload: bytes) -> bytes:
    """The same for a binary frame (a ?format=msgpack connection's)."""
    return _frame(0x82, payload)


def _frame(first_byte: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes((first_byte, size)) + payload
    if size < 65536:
        return bytes((first_byte, 126)) + size.to_bytes(2, "big") + payload
    return bytes((first_byte, 127)) + size.to_bytes(8, "big") + payload


class MarketFanout:
    """This process's market subscriptions: group -> the connections (runners) listening to it."""

    def __init__(self) -> None:
        self.members: dict[str, set] = {}
        self.channel: str | None = None
        self._task: asyncio.Task | None = None
        self._ready: asyncio.Lock | None = None

    async def join(self, group: str, member) -> None:
        layer = get_channel_layer(groups.MARKET_LAYER)
        await self._start(layer)
        members = self.members.setdefault(group, set())
        first = not members
        members.add(member)
        if first:
            await layer.group_add(group, self.channel)

    async def leave(self, group: str, member) -> None:
        members = self.members.get(group)
        if not members or member not in members:
            return
        members.discard(member)
        if not members:
            del self.members[group]
            await get_channel_layer(groups.MARKET_LAYER).group_discard(group, self.channel)

    async def _start(self, layer) -> None:
        if self._ready is None:
            self._ready = asyncio.Lock()
        async with self._ready:
            if self.channel is None:
                self.channel = await layer.new_channel()
                self._task = asyncio.get_running_loop().create_task(self._run(layer), name="market-fanout")

    async def _run(self, layer) -> None:
        """Read the process's market channel into an inbox (a newer price replaces a waiting one when
        the process falls behind) and hand every update to its group's connections."""
        inbox = Inbox()

        async def pump() -> None:
            while True:
                if inbox.put(await layer.receive(self.channel)):
                    metrics.INBOX_CONFLATIONS.inc()

        pumping = asyncio.get_running_loop().create_task(pump())
        try:
            while True:
                events = [await inbox.get()]
                events += inbox.take_ready(_any)  # fallen behind: what waited goes out together
                try:
                    if len(events) > 1:
                        self.deliver_all(events)
                    else:
                        self.deliver(events[0])
                except Exception:
                    logger.exception(
                        "market fan-out failed for a %s update (of %d)", events[0].get("kind"), len(events)
                    )
        finally:
            pumping.cancel()

    def deliver(self, event: dict) -> None:
        members = self.members.get(event.get("group", ""))
        if not members:
            return
        frame, sub = _Frame(event["text"]), market_sub_of(event)
        written = sum(member.market_event(event, frame, sub) for member in list(members))
        if written:
            metrics.count_out(event.get("kind", "market"), written)  # once per update, not per socket

    def deliver_all(self, events: list[dict]) -> None:
        """Updates that waited together: each connection gets its own in order; a ?batch=1 one gets
        them as one array frame, framed once for every connection given the same updates."""
        waiting: dict[object, list[tuple]] = {}
        for event in events:
            members = self.members.get(event.get("group", ""))
            if members:
                update = (event, _Frame(event["text"]), market_sub_of(event))
                for member in members:
                    waiting.setdefault(member, []).append(update)
        arrays: dict[tuple, bytes] = {}
        written: dict[str, int] = {}
        for member, updates in waiting.items():
            try:
                if len(updates) > 1 and member.batch:
                    sent = updates if member.market_events(updates, arrays) else ()
                else:
                    sent = [update for update in updates if member.market_event(*update)]
            except Exception:
                logger.exception("market fan-out failed for one connection")
                continue
            for event, _frame, _sub in sent:
                kind = event.get("kind", "market")
                written[kind] = written.get(kind, 0) + 1
        for kind, count in written.items():
            metrics.count_out(kind, count)


def array_frame(frames: list[_Frame], arrays: dict[tuple, bytes], binary: bool = False) -> bytes:
    """The array frame of several updates (JSON texts joined, or MessagePack bytes behind an array
    header: never re-encoded), built once per delivery for every connection given the same updates
    in the same format (`arrays`)."""
    key = (binary, *(id(frame) for frame in frames))  # the frames live until the delivery ends
    found = arrays.get(key)
    if found is None:
        if binary:
            found = binary_frame(wire.array_header(len(frames)) + b"".join(wire.packed(f.text) for f in frames))
        else:
            found = text_frame(b"[" + b",".join(frame.payload() for frame in frames) + b"]")
        arrays[key] = found
    return found


class _Frame:
    """The update's WebSocket frame, built once per format on first use and shared by every connection."""

    __slots__ = ("_binary", "_bytes", "_payload", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._bytes: bytes | None = None
        self._payload: bytes | None = None
        self._binary: bytes | None = None

    def payload(self) -> bytes:
        if self._payload is None:
            self._payload = self.text.encode()
        return self._payload

    def bytes(self) -> bytes:
        """The JSON text frame."""
        if self._bytes is None:
            self._bytes = text_frame(self.payload())
        return self._bytes

    def binary(self) -> bytes:
        """The MessagePack binary frame (realtime.wire: converted once per process)."""
        if self._binary is None:
            self._binary = binary_frame(wire.packed(self.text))
        return self._binary


def _any(event) -> bool:
    return True


_fanouts: dict[int, MarketFanout] = {}


def get_fanout(loop_id: Callable[[], int] = lambda: id(asyncio.get_running_loop())) -> MarketFanout:
    """The fan-out of this process's event loop (tests run several loops, one after another)."""
    key = loop_id()
    if key not in _fanouts:
        _fanouts[key] = MarketFanout()
    return _fanouts[key]
