"""Snapshot reads on threads of their own, one load in flight per user, within a per-user budget.

Channels' `database_sync_to_async` runs every call of a daphne process on asgiref's one sync thread:
the connect's user lookup, every snapshot of every user. One user resubscribing on five sockets
then queues everybody else's connect behind his 200-order snapshots (docs/BENCHMARKS.md, "Noisy
neighbour"). Here snapshot loads run on a small pool of their own, and each user has one place in
it: a user's next load waits for his previous one (first come, first served), while another user's
load takes a free thread at once. So a user never holds more than one thread, however many
connections he resubscribes on, and the shared sync thread stays free for the connects.

One thread is still the whole process's CPU when its snapshots are large: writing them out costs
the event loop more than reading them. So each user also has a budget of snapshot messages a second
(WS_SNAPSHOT_RATE_PER_USER, per process), spent after each load by what it returned: a user whose
snapshots are small never waits, one who reloads 200 orders many times a second waits between
loads until his budget has refilled. His loads are delayed, never refused.

Each thread opens its own database connection; with PostgreSQL's pool (DATABASE_POOL_SIZE) the
pool's threads are among its clients, so they are kept fewer than the pool's connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from channels.db import database_sync_to_async

T = TypeVar("T", bound=Sized)

THREADS = 4  # users whose snapshots load at the same time, per process
SWEEP_AT = 64  # places kept before the first sweep of quiet users' places
BURST_SECONDS = 4.0  # a budget holds this many seconds' worth: a reconnect with a large state never waits


@dataclass
class Budget:
    """A token bucket that may go into debt: a load is charged what it returned, after the fact (pure)."""

    rate: float  # tokens (messages) a second
    burst: float  # the most it holds
    tokens: float
    at: float  # when `tokens` was last brought up to date (monotonic seconds)

    @classmethod
    def full(cls, rate: float, now: float) -> Budget:
        burst = rate * BURST_SECONDS
        return cls(rate, burst, burst, now)

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def delay(self, now: float) -> float:
        """Seconds until the budget is out of debt (0: a load may start now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def charge(self, cost: float, now: float) -> None:
        self._refill(now)
        self.tokens -= cost

    def refilled(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


@dataclass
class _Place:
    """One user's place in the pool: held while his load runs, awaited by his next ones."""

    budget: Budget
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # loads running or waiting


class SnapshotPool:
    def __init__(
        self,
        threads: int = THREADS,
        rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ):
        self.threads = threads
        self._rate = rate  # None: WS_SNAPSHOT_RATE_PER_USER, read on first use
        self._clock, self._sleep = clock, sleep
        self._executor: ThreadPoolExecutor | None = None
        self._places: dict[int, _Place] = {}
        self._sweep_at = SWEEP_AT

    @property
    def rate(self) -> float:
        if self._rate is None:
            from django.conf import settings

            self._rate = settings.APP.ws_snapshot_rate_per_user
        return self._rate

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:  # created on first use: a process that serves no snapshot has none
            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="snapshots")
        return self._executor

    def users_tracked(self) -> int:
        """Users with a place: loading, or with a budget not yet refilled."""
        return len(self._places)

    def waiting(self, user_id: int) -> int:
        """The user's loads running or queued (for tests and metrics)."""
        place = self._places.get(user_id)
        return 0 if place is None else place.holders

    async def run(self, user_id: int, read: Callable[..., T], /, **kwargs) -> T:
        """`read(**kwargs)` on the pool, after the user's earlier loads and within his budget."""
        place = self._places.get(user_id)
        if place is None:
            place = self._places[user_id] = _Place(Budget.full(self.rate, self._clock()))
        place.holders += 1
        try:
            async with place.lock:
                if wait := place.budget.delay(self._clock()):
                    await self._sleep(wait)
                load = database_sync_to_async(read, thread_sensitive=False, executor=self._pool())
                found = await load(**kwargs)
                place.budget.charge(len(found), self._clock())
                return found
        finally:
            place.holders -= 1
            self._forget(user_id, place)

    def _forget(self, user_id: int, place: _Place) -> None:
        """Drop the places of users with nothing in flight once forgetting loses nothing (a full budget):
        this user's at once, the others' in a sweep each time the places have doubled."""
        now = self._clock()
        if place.holders == 0 and place.budget.refilled(now):
            del self._places[user_id]
        if len(self._places) > self._sweep_at:
            for other, kept in list(self._places.items()):
                if kept.holders == 0 and kept.budget.refilled(now):
                    del self._places[other]
            self._sweep_at = max(SWEEP_AT, 2 * len(self._places))


pool = SnapshotPool()
