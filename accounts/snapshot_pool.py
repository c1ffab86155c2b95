"""Snapshot reads on threads of their own, at most one in flight per user.

Channels' `database_sync_to_async` runs every call of a daphne process on asgiref's one sync thread:
the connect's user lookup, every snapshot of every user. One user resubscribing on five sockets
then queues everybody else's connect behind his 200-order snapshots (docs/BENCHMARKS.md, "Noisy
neighbour"). Here snapshot loads run on a small pool of their own, and each user has one place in
it: a user's next load waits for his previous one (first come, first served), while another user's
load takes a free thread at once. So a user can never hold more than one thread, however many
connections he resubscribes on, and the shared sync thread stays free for the connects.

Each thread opens its own database connection; with PostgreSQL's pool (DATABASE_POOL_SIZE) the
pool's threads are among its clients, so they are kept fewer than the pool's connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from channels.db import database_sync_to_async

T = TypeVar("T")

THREADS = 4  # users whose snapshots load at the same time, per process


@dataclass
class _Place:
    """One user's place in the pool: held while his load runs, awaited by his next ones."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # loads running or waiting: the place is forgotten at 0


class SnapshotPool:
    def __init__(self, threads: int = THREADS):
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._places: dict[int, _Place] = {}

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:  # created on first use: a process that serves no snapshot has none
            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="snapshots")
        return self._executor

    def waiting(self, user_id: int) -> int:
        """The user's loads running or queued (for tests and metrics)."""
        place = self._places.get(user_id)
        return 0 if place is None else place.holders

    async def run(self, user_id: int, read: Callable[..., T], /, **kwargs) -> T:
        """`read(**kwargs)` on the pool, after the user's earlier loads (database connections handled)."""
        place = self._places.setdefault(user_id, _Place())
        place.holders += 1
        try:
            async with place.lock:
                load = database_sync_to_async(read, thread_sensitive=False, executor=self._pool())
                return await load(**kwargs)
        finally:
            place.holders -= 1
            if place.holders == 0:
                del self._places[user_id]


pool = SnapshotPool()
