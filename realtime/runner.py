"""Carries out a connection's `Session` actions on daphne and the channel layers: the I/O half of it.

The session decides; the runner sends frames, joins and leaves groups, loads snapshots and history
positions (feeding the results back to the session), and keeps the heartbeat and drain timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from channels.layers import get_channel_layer

from realtime import groups, metrics, recovery, session, wire
from realtime.fanout import array_frame, get_fanout
from realtime.middleware import validate_access_token
from realtime.providers import providers
from realtime.registry import Connection, get_registry


@dataclass(eq=False, slots=True)  # identity: a runner is one connection (a member of fan-out sets)
class Runner:
    session: session.Session
    conn: Connection
    send: object  # daphne's ASGI send callable
    channel_names: dict[str, str]  # channel-layer alias -> this connection's channel name
    backlog: object  # () -> bytes daphne holds for the socket (realtime.flow)
    loop: asyncio.AbstractEventLoop
    registered: bool = False
    tasks: list[asyncio.Task] = field(default_factory=list)  # under way (`spawn`), cancelled at the end
    write_frame: object = None  # realtime.flow.raw_writer once the socket is open, when it can be used
    busy: int = 0  # nested run() calls under way: market updates wait in `held` meanwhile
    held: list[dict] = field(default_factory=list)
    timer: asyncio.TimerHandle | asyncio.Task | None = None  # the keepalive's next deadline, or its actions

    async def run(self, actions: list[session.Action]) -> None:
        """Carry out a session's actions, in order; then the market updates that came meanwhile."""
        self.busy += 1
        try:
            for action in actions:
                await _ACTIONS[type(action)](self, action)
        finally:
            self.busy -= 1
        if not self.busy and self.held:
            held, self.held = self.held, []
            await self.run(self.session.events(held, self.backlog()))

    def market_event(self, event: dict, frame, sub: session.MarketSub) -> bool:
        """A market update from this process's fan-out (realtime.fanout); never awaits. True when it
        was written at once, framed once for every connection of the process (the fan-out counts)."""
        if self.busy:
            self.held.append(event)
            return False
        actions = self.session.market(event, sub, self.backlog())
        if not actions:
            return False
        if _answered_with(actions, frame) and self.write_frame:
            return self._write_now(frame.binary() if self.session.binary else frame.bytes())
        self.spawn(self.run(actions))
        return False

    @property
    def batch(self) -> bool:
        """?batch=1: updates that waited together may go out as one array frame."""
        return self.session.batch

    def market_events(self, updates: list[tuple], arrays: dict[tuple, bytes]) -> bool:
        """Market updates (event, frame, subscription) that waited together for this ?batch=1
        connection, from the fan-out; never awaits. True when all were written at once as one array
        frame (`arrays`: the frames already built in this delivery, shared between connections)."""
        if self.busy:
            self.held += [event for event, _frame, _sub in updates]
            return False
        backlog, actions, frames = self.backlog(), [], []
        for event, frame, sub in updates:
            sent = self.session.market(event, sub, backlog)
            actions += sent
            if _answered_with(sent, frame):
                frames.append(frame)
        if not actions:
            return False
        if len(frames) == len(actions) == len(updates) and self.write_frame:
            return self._write_now(array_frame(frames, arrays, self.session.binary))
        self.spawn(self.run(session.batched(actions)))
        return False

    def _write_now(self, frame: bytes) -> bool:
        """Write a frame built by the fan-out straight to the socket; False when it is not open."""
        if self.write_frame(frame):
            self.session.sent(self.loop.time())
            return True
        return False

    async def _send(self, action: session.Send) -> None:
        self.session.sent(self.loop.time())
        if self.session.binary:
            await self.send({"type": "websocket.send", "bytes": wire.packed_frame(action.text, action.parts)})
        else:
            await self.send({"type": "websocket.send", "text": action.text})
        metrics.count_out(action.label, action.messages)

    async def _membership(self, action: session.Join | session.Leave) -> None:
        alias, group = groups.of(action.sub, self.conn.user_id)
        if isinstance(action.sub, session.MarketSub):  # one subscription per process, not per connection
            change = get_fanout().join if isinstance(action, session.Join) else get_fanout().leave
            await change(group, self)
            return
        layer = get_channel_layer(alias)
        change = layer.group_add if isinstance(action, session.Join) else layer.group_discard
        await change(group, self.channel_names[alias])

    async def _fetch(self, action: session.FetchSnapshots) -> None:
        for sub, texts in (await providers.snapshots(action.subs, self.conn.user_id)).items():
            await self.run(self.session.snapshot(sub, texts, self.backlog()))

    async def _load_positions(self, action: session.LoadPositions) -> None:
        loaded = await recovery.load(action.subs, action.request.since, self.conn.user_id)
        await self.run(self.session.positions_loaded(action, loaded, self.backlog()))

    async def _fill_gap(self, action: session.FillGap) -> None:
        texts = await recovery.gap(action, self.conn.user_id)
        await self.run(self.session.gap_filled(action, texts, self.backlog()))

    async def _check_token(self, action: session.CheckToken) -> None:
        await self.run(self.session.token_checked(*validate_access_token(action.token)))

    async def _count(self, action: session.SubscriptionsChanged) -> None:
        if self.registered:
            await get_registry().set_subscriptions(self.conn.conn_id, action.count)

    async def _drain(self, action: session.Drain) -> None:
        async def drain() -> None:
            while (step := self.session.drain(self.backlog())) is not None:
                await (asyncio.sleep(step) if isinstance(step, float) else self._send(step))

        self.spawn(drain())

    async def _close(self, action: session.Close) -> None:
        await self.send({"type": "websocket.close", "code": action.code, "reason": action.reason})

    def spawn(self, work) -> None:
        """Carry out `work` in a task of its own, cancelled if the connection ends first; forgotten
        once done, or a busy connection's list would keep every task it ever started."""
        task = self.loop.create_task(work)
        self.tasks.append(task)
        task.add_done_callback(self.tasks.remove)

    def start_keepalive(self) -> None:
        """Heartbeats after silence, and the close when the token expires (the session's deadlines).

        A timer, not a task sleeping until the deadline: an idle connection would pay for that task,
        its frame and its future all the time. A task exists only while a deadline's actions run."""
        if not self.session.closed:
            delay = self.session.next_deadline(self.loop.time(), time.time())
            self.timer = self.loop.call_later(delay, self._deadline)

    def _deadline(self) -> None:
        actions = self.session.tick(self.loop.time(), time.time())
        if actions:
            self.timer = self.loop.create_task(self._tick(actions))
        else:  # nothing due after all (a frame went out meanwhile): wait for the new deadline
            self.start_keepalive()

    async def _tick(self, actions: list[session.Action]) -> None:
        await self.run(actions)
        self.start_keepalive()

    async def end(self) -> None:
        """The socket is gone: stop the timers, leave every group, give back the registry place."""
        if self.timer is not None:
            self.timer.cancel()
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await self.run(self.session.end())
        if self.registered:
            metrics.ACTIVE_CONNECTIONS.labels(endpoint=str(self.session.endpoint)).dec()
            metrics.CONNECTION_DURATION.observe(self.loop.time() - self.session.now)
            with contextlib.suppress(Exception):
                await get_registry().release(self.conn.conn_id)


def _answered_with(actions: list[session.Action], frame) -> bool:
    """The session answered an update with just its text: the fan-out's frame can go as it is."""
    return len(actions) == 1 and type(actions[0]) is session.Send and actions[0].text is frame.text


_ACTIONS = {
    session.Send: Runner._send,
    session.Join: Runner._membership,
    session.Leave: Runner._membership,
    session.FetchSnapshots: Runner._fetch,
    session.LoadPositions: Runner._load_positions,
    session.FillGap: Runner._fill_gap,
    session.CheckToken: Runner._check_token,
    session.SubscriptionsChanged: Runner._count,
    session.Drain: Runner._drain,
    session.Close: Runner._close,
}
