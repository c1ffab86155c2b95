"""The worker's election (tradingsite.worker.run_elected) with an in-memory lease and a stand-in term."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from asgiref.sync import sync_to_async

from leadership import fence
from leadership.lease import LeaseTiming
from marketdata import status
from tests.support import TIMEOUT
from tradingsite import worker

TIMING = LeaseTiming(ttl=1.0)


@dataclass
class Store:
    """What Redis holds: the lease (holder, token) and the counter; `down` makes every call fail."""

    lease: tuple[str, int] | None = None
    counter: int = 0
    down: bool = False
    high_water: int = 0
    attempts: int = 0
    terms: list[tuple[str, int | None]] = field(default_factory=list)  # (holder, token seen by its work)


class FakeLease:
    def __init__(self, store: Store, holder: str):
        self.store, self.holder, self.timing = store, holder, TIMING

    def _reachable(self) -> None:
        if self.store.down:
            raise ConnectionError("redis is away")

    async def acquire(self, *, floor: int = 0) -> int | None:
        self.store.attempts += 1
        self.store.changed.set()
        self._reachable()
        if self.store.lease is not None:
            return None
        self.store.counter = max(self.store.counter + 1, floor + 1)
        self.store.lease = (self.holder, self.store.counter)
        return self.store.counter

    async def renew(self, token: int) -> bool:
        self._reachable()
        return self.store.lease == (self.holder, token)

    async def release(self, token: int) -> bool:
        self._reachable()
        if self.store.lease == (self.holder, token):
            self.store.lease = None
            return True
        return False


@pytest.fixture
def store(monkeypatch):
    store = Store()
    changed = asyncio.Event()

    async def term(stop, options):
        store.terms.append((asyncio.current_task().get_name(), fence.current.get()))
        changed.set()
        await stop.wait()
        store.terms.append(("ended", fence.current.get()))
        changed.set()

    def claim(*, token, holder):
        store.high_water = max(store.high_water, token)

    async def nothing(*args, **kwargs):
        return None

    monkeypatch.setattr(worker, "run_term", term)
    monkeypatch.setattr(worker, "database_sync_to_async", sync_to_async)  # no database here
    monkeypatch.setattr(fence, "fence_claim", claim)
    monkeypatch.setattr(fence, "fence_high_water", lambda: store.high_water)
    monkeypatch.setattr(status, "awrite_leader", nothing)
    monkeypatch.setattr(status, "aclear_leader", nothing)
    store.changed = changed
    return store


async def until(store: Store, predicate) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not predicate():
            store.changed.clear()
            await store.changed.wait()


def elect(store: Store, holder: str) -> tuple[asyncio.Event, asyncio.Task]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_elected(stop, None, FakeLease(store, holder)))
    return stop, task


async def test_one_worker_leads_and_its_work_carries_the_token(store):
    stop_a, a = elect(store, "a")
    await until(store, lambda: store.terms)
    stop_b, b = elect(store, "b")
    await asyncio.sleep(0)
    assert store.lease == ("a", 1)
    assert store.terms == [("worker-term", 1)]
    assert store.high_water == 1  # claimed in the database before any work started
    for stop in (stop_a, stop_b):
        stop.set()
    await asyncio.gather(a, b)


async def test_when_the_leader_stops_a_standby_takes_over_with_a_newer_token(store):
    stop_a, a = elect(store, "a")
    await until(store, lambda: store.lease is not None)
    stop_b, b = elect(store, "b")
    stop_a.set()
    await a
    await until(store, lambda: store.lease is not None and store.lease[0] == "b")
    await until(store, lambda: len(store.terms) == 3)
    assert store.terms == [("worker-term", 1), ("ended", 1), ("worker-term", 2)]
    stop_b.set()
    await b
    assert store.lease is None  # released on an orderly stop


async def test_a_leader_whose_lease_was_taken_steps_down_and_stands_by(store):
    stop, task = elect(store, "a")
    await until(store, lambda: store.terms)
    store.lease = ("b", 99)  # the lease expired and another worker took it
    await until(store, lambda: ("ended", 1) in store.terms)
    assert store.lease == ("b", 99)
    stop.set()
    await task


async def test_a_leader_cut_off_from_redis_steps_down_and_leads_again_when_it_is_free(store):
    stop, task = elect(store, "a")
    await until(store, lambda: store.terms)
    store.down = True
    await until(store, lambda: ("ended", 1) in store.terms)  # before its lease could be given away
    store.down, store.lease = False, None  # Redis is back; the lease expired meanwhile
    await until(store, lambda: ("worker-term", 2) in store.terms)
    stop.set()
    await task


async def test_a_token_never_goes_below_what_the_database_has_seen(store):
    store.high_water = 41  # a Redis failover lost the counter; the database remembers
    stop, task = elect(store, "a")
    await until(store, lambda: store.terms)
    assert store.terms == [("worker-term", 42)]
    stop.set()
    await task


async def test_a_term_whose_work_fails_hands_the_lease_on_at_once(store, monkeypatch):
    failures = []

    async def failing_term(stop, options):
        failures.append(fence.current.get())
        store.changed.set()
        if len(failures) == 1:
            raise RuntimeError("the exchange client crashed")
        await stop.wait()

    monkeypatch.setattr(worker, "run_term", failing_term)
    stop, task = elect(store, "a")
    await until(store, lambda: len(failures) == 2)  # released, not left to expire: led again at once
    assert failures == [1, 2]
    stop.set()
    await task
    assert store.lease is None


async def test_a_standby_cut_off_from_redis_says_so_once_and_leads_when_it_is_back(store, caplog):
    store.down = True
    stop, task = elect(store, "a")
    await until(store, lambda: store.attempts >= 3)
    complaints = [r for r in caplog.records if "could not try for the worker lease" in r.getMessage()]
    assert len(complaints) == 1
    store.down = False
    await until(store, lambda: store.terms)
    assert any("can try for the lease again" in r.getMessage() for r in caplog.records)
    stop.set()
    await task
