"""What a connection has received but not yet handled, with prices kept current when it falls behind.

Events from the socket and the channel layers wait here until the consumer handles them, one at a
time. Normally each is handled before the next arrives. When the whole process falls behind (more
clients than its CPU can serve), market state (tickers, books: events with a conflation `key`)
would otherwise queue up and reach clients seconds old; here a newer state event replaces the one
still waiting with the same key, in its place. Everything else (socket frames, trading events,
trades) is kept, in order.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Inbox:
    __slots__ = ("_order", "_state", "_waiter", "conflated")

    def __init__(self) -> None:
        self._order: deque = deque()  # events, or the keys of state events waiting in `_state`
        self._state: dict[str, dict] = {}
        # Only while `get` waits; an asyncio.Event would keep a deque of waiters (760 bytes) per inbox.
        self._waiter: asyncio.Future | None = None
        self.conflated = 0

    def __len__(self) -> int:
        return len(self._order)

    def put(self, event) -> bool:
        """Queue an event; True when it replaced an older state event still waiting."""
        key = event.get("key") if isinstance(event, dict) else None
        replaced = key is not None and key in self._state
        if replaced:
            self._state[key] = event  # the older one was never handled: nobody needs it now
            self.conflated += 1
        elif key is None:
            self._order.append(event)
        else:
            self._state[key] = event
            self._order.append(_Key(key))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        return replaced

    def take_ready(self, wanted) -> list:
        """The events at the head that are already waiting and `wanted`, without waiting for more."""
        taken = []
        while self._order:
            head = self._order[0]
            event = self._state[head.name] if isinstance(head, _Key) else head
            if not wanted(event):
                break
            self._order.popleft()
            if isinstance(head, _Key):
                del self._state[head.name]
            taken.append(event)
        return taken

    async def get(self):
        while not self._order:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._order.popleft()
        return self._state.pop(item.name) if isinstance(item, _Key) else item


class _Key:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name
