"""A bounded per-connection outbox for clients that read slower than we publish.

Pure: no I/O. Three kinds of message, because they fail differently under pressure:
- STATE (ticker, order book): only the newest per stream and symbol matters, so a newer one
  replaces the queued one in place (conflation). Bounded by the connection's subscriptions.
- DROPPABLE (market trades): a tape; when the outbox is full the oldest is dropped and counted.
- RELIABLE (trading events, acks, errors): never dropped. When they would overflow the outbox,
  `SlowConsumer` is raised and the connection is closed so the client reconnects and reloads state.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    STATE = "state"
    DROPPABLE = "droppable"
    RELIABLE = "reliable"


class SlowConsumer(Exception):
    """The client is not reading; the next reliable message would have to be dropped."""


@dataclass(slots=True)
class _Entry:
    text: str
    kind: Kind
    key: str | None


class Outbox:
    __slots__ = ("_counted", "_queue", "_state", "capacity", "conflated", "dropped")

    def __init__(self, capacity: int):
        self.capacity = capacity
        # Made on the first put: most connections never queue, and an empty deque is 760 bytes.
        self._queue: deque[_Entry] | None = None
        self._state: dict[str, _Entry] = {}
        self._counted = 0  # live RELIABLE + DROPPABLE entries: what `capacity` bounds
        self.dropped = 0
        self.conflated = 0

    def __len__(self) -> int:
        return self._counted + len(self._state)

    def __bool__(self) -> bool:
        return len(self) > 0

    def put(self, text: str, kind: Kind, key: str | None = None) -> None:
        if kind is Kind.STATE:
            if not key:
                raise ValueError("a STATE message needs the key it is conflated by")
            self._put_state(text, key)
            return
        if self._counted >= self.capacity and not self._drop_oldest_droppable():
            if kind is Kind.DROPPABLE:
                self.dropped += 1
                return
            raise SlowConsumer(f"outbox full: {self._counted} undelivered messages")
        self._queued().append(_Entry(text, kind, key))
        self._counted += 1

    def pop(self) -> str | None:
        if not self._queue:
            return None
        entry = self._queue.popleft()
        if entry.kind is Kind.STATE:
            del self._state[entry.key]
        else:
            self._counted -= 1
        return entry.text

    def _put_state(self, text: str, key: str) -> None:
        queued = self._state.get(key)
        if queued is not None:
            queued.text = text  # keeps its place in the queue, so order between streams holds
            self.conflated += 1
            return
        entry = _Entry(text, Kind.STATE, key)
        self._state[key] = entry
        self._queued().append(entry)

    def _queued(self) -> deque[_Entry]:
        if self._queue is None:
            self._queue = deque()
        return self._queue

    def _drop_oldest_droppable(self) -> bool:
        for index, entry in enumerate(self._queue or ()):
            if entry.kind is Kind.DROPPABLE:
                del self._queue[index]  # removed, not marked: the deque itself must stay bounded
                self._counted -= 1
                self.dropped += 1
                return True
        return False
