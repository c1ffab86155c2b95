"""Helpers for tests that run the market-data worker against the in-process simulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import replace

import orjson
from channels.layers import get_channel_layer

from marketdata.backoff import RetryPolicy
from marketdata.exchange_server import ExchangeSimulator
from marketdata.stream import STREAM_KINDS, MarketDataWorker, WorkerOptions
from realtime import groups
from tests.support import TIMEOUT

QUICK = WorkerOptions(
    ws_url="ws://unset",
    rest_url="http://unset",
    source="simulator",
    depth=5,
    stale_after=3.0,
    symbols_refresh=0.1,
    status_every=0.1,
    publish_every=0.05,
    snapshot_limit=1000,
    retry=RetryPolicy(initial=0.05, maximum=0.2, healthy_after=60),
    snapshot_retry=RetryPolicy(initial=0.05, maximum=0.2),
)


def static_symbols(*names: str):
    """A symbols loader for tests that do not need the database; mutate the returned set to change it."""
    current = set(names)

    async def load() -> set[str]:
        return set(current)

    load.current = current
    return load


@contextlib.asynccontextmanager
async def running_worker(simulator: ExchangeSimulator, listeners: Iterable = (), **changes):
    """A worker connected to `simulator`, stopped (and checked to stop) at the end of the block."""
    options = replace(
        QUICK,
        ws_url=simulator.ws_url,
        rest_url=simulator.rest_url,
        **{"symbols_loader": static_symbols("BTCUSDT", "ETHUSDT"), **changes},
    )
    worker = MarketDataWorker(options, listeners)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        async with asyncio.timeout(TIMEOUT):
            await task


def streams_of(*symbols: str) -> set[str]:
    return {f"{s.lower()}@{kind}" for s in symbols for kind in STREAM_KINDS}


def subscribed(*symbols: str, connections: int | None = None) -> Callable[[ExchangeSimulator], bool]:
    """A simulator predicate: its clients together listen to exactly these symbols' streams."""

    def check(simulator: ExchangeSimulator) -> bool:
        clients = list(simulator.clients.values())
        if not clients or (connections is not None and len(clients) != connections):
            return False
        return set().union(*(c.subscriptions for c in clients)) == streams_of(*symbols)

    return check


class GroupSpy:
    """A channel in some market groups of the in-memory layer, as a consumer would be."""

    def __init__(self, layer, channel: str):
        self.layer, self.channel = layer, channel

    @classmethod
    async def join(cls, *group_names: str) -> GroupSpy:
        layer = get_channel_layer(groups.MARKET_LAYER)
        channel = await layer.new_channel()
        for name in group_names:
            await layer.group_add(name, channel)
        return cls(layer, channel)

    async def next(self, predicate: Callable[[dict], bool] = lambda m: True, timeout: float = TIMEOUT) -> dict:
        """The next published message (decoded) that matches `predicate`."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.layer.receive(self.channel)
                message = orjson.loads(event["text"])
                if predicate(message):
                    return message


class Collector:
    """A listener that keeps what it receives and lets a test wait for a message."""

    def __init__(self):
        self.messages: list[dict] = []
        self._arrived = asyncio.Condition()

    async def __call__(self, messages: list[dict]) -> None:
        async with self._arrived:
            self.messages.extend(messages)
            self._arrived.notify_all()

    async def wait_for(self, predicate: Callable[[dict], bool], timeout: float = TIMEOUT) -> dict:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: any(predicate(m) for m in self.messages))
            return next(m for m in self.messages if predicate(m))
