"""In-process listeners of the market feed (the paper-trading engine is one): each behind its own queue.

A listener is `async def listener(messages: list[dict]) -> None`; it receives every trade and ticker
message the worker publishes, in order, as lists of what arrived since its last call (a tick's
messages in one call: a call per message cost the worker more than the engine's own work, measured).
A listener that raises is logged and gets the next messages; the rest of that list is its own to lose.
The messages are the worker's own, shared by every listener: a listener must not change them.
Each listener gets a bounded queue and a task of its own,
so a slow listener never stalls publishing; when its queue is full the message is dropped and the
drop is logged (a dropped trade at ERROR, with its id: paper fills may have been missed).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection

logger = logging.getLogger(__name__)

Listener = Callable[[list[dict]], Awaitable[None]]


class ListenerFeed:
    """One listener, its queue and the task that feeds it."""

    def __init__(self, listener: Listener, size: int):
        self.listener = listener
        self.name = getattr(listener, "__qualname__", repr(listener))
        self.size = size
        self.dropped = 0
        # A deque and a flag, not an asyncio.Queue: the worker offers a tick's messages at once, and a
        # queue's put and get per message (with a wake-up each) cost more than the listener's own work.
        self._pending: collections.deque[dict] = collections.deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None
        self._last_ticker_warning = -math.inf

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"market-listener-{self.name}")

    def offer_many(self, messages: Collection[dict]) -> None:
        """Queue each message, in order, never waiting: past `size` waiting, one is dropped, loudly.

        The messages are shared, not copied (a copy of each cost the worker more than the engine's
        work on it): a listener must not change them."""
        pending = self._pending
        if len(pending) + len(messages) <= self.size:
            pending.extend(messages)
        else:
            for message in messages:
                if len(pending) >= self.size:
                    self.dropped += 1
                    self._log_drop(message)
                else:
                    pending.append(message)
        if pending:
            self._idle.clear()
            self._ready.set()

    async def stop(self, grace: float) -> None:
        """Let the listener finish what is queued (up to `grace` seconds), then stop it."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._idle.wait()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        pending = self._pending
        while True:
            await self._ready.wait()
            self._ready.clear()
            while pending:
                batch = list(pending)
                pending.clear()
                try:
                    await self.listener(batch)
                except Exception:
                    logger.exception("market listener %s failed on a list of %d message(s)", self.name, len(batch))
            self._idle.set()

    def _log_drop(self, message: dict) -> None:
        if message.get("type") == "trade":
            logger.error(
                "market listener %s is %d messages behind: dropped %s trade %s",
                self.name,
                self.size,
                message.get("symbol"),
                message.get("trade_id"),
            )
            return
        # Tickers are state: the next one replaces this one, so one warning per 10 s is enough.
        now = time.monotonic()
        if now - self._last_ticker_warning >= 10:
            self._last_ticker_warning = now
            logger.warning("market listener %s is %d messages behind: dropping tickers", self.name, self.size)
