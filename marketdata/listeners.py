"""In-process listeners of the market feed (the paper-trading engine is one): each behind its own queue.

A listener is `async def listener(message: dict) -> None`; it receives every trade and ticker
message the worker publishes, in order. Each listener gets a bounded queue and a task of its own,
so a slow listener never stalls publishing; when its queue is full the message is dropped and the
drop is logged (a dropped trade at ERROR, with its id: paper fills may have been missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

Listener = Callable[[dict], Awaitable[None]]


class ListenerFeed:
    """One listener, its queue and the task that feeds it."""

    def __init__(self, listener: Listener, size: int):
        self.listener = listener
        self.name = getattr(listener, "__qualname__", repr(listener))
        self.queue: asyncio.Queue[dict] = asyncio.Queue(maxsize=size)
        self.dropped = 0
        self._task: asyncio.Task | None = None
        self._last_ticker_warning = -math.inf

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"market-listener-{self.name}")

    def offer(self, message: dict) -> None:
        """Queue a copy of `message`, never waiting: a full queue drops it, loudly."""
        try:
            self.queue.put_nowait(dict(message))
        except asyncio.QueueFull:
            self.dropped += 1
            self._log_drop(message)

    async def stop(self, grace: float) -> None:
        """Let the listener finish what is queued (up to `grace` seconds), then stop it."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            message = await self.queue.get()
            try:
                await self.listener(message)
            except Exception:
                logger.exception("market listener %s failed on a %s message", self.name, message.get("type"))
            finally:
                self.queue.task_done()

    def _log_drop(self, message: dict) -> None:
        if message.get("type") == "trade":
            logger.error(
                "market listener %s is %d messages behind: dropped %s trade %s",
                self.name,
                self.queue.maxsize,
                message.get("symbol"),
                message.get("trade_id"),
            )
            return
        # Tickers are state: the next one replaces this one, so one warning per 10 s is enough.
        now = time.monotonic()
        if now - self._last_ticker_warning >= 10:
            self._last_ticker_warning = now
            logger.warning("market listener %s is %d messages behind: dropping tickers", self.name, self.queue.maxsize)
