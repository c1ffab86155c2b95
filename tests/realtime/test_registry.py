"""realtime.registry: per-user and per-address limits and the /ws/status figures, in memory and in real Redis.

The Redis tests take a database number by file lock (as the integration suite does) and keep their
keys under a prefix of their own, which they delete afterwards; nothing is flushed. Entry expiry is
driven by moving the registry's wall clock, so no test waits for time to pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from types import SimpleNamespace

import pytest
import redis.asyncio as aioredis

from realtime import registry
from realtime.registry import Connection, Limits, MemoryRegistry, RedisRegistry, Status, get_registry
from tests.integration import harness
from tests.support import TIMEOUT

# Not the integration suite's (2-9), the browser and tools suites' (12-15) or the benchmark's (11).
REGISTRY_REDIS_DBS = (10,)


def conn(
    user_id: int | None = 7, endpoint: str = "trading", subscriptions: int = 0, address: str | None = "192.0.2.1"
) -> Connection:
    return Connection(uuid.uuid4().hex, endpoint, user_id, subscriptions, address)


@pytest.fixture(scope="module")
def redis_url():
    if not harness.redis_answers():
        pytest.fail("Redis is not answering on 127.0.0.1:6379: start it (.ci/run does) to run the registry tests")
    db, lock = harness.claim_redis_db(REGISTRY_REDIS_DBS)
    try:
        yield f"redis://127.0.0.1:6379/{db}"
    finally:
        lock.close()


class Clock:
    """The registry's wall clock, moved by the test (Redis scores are computed from it)."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(registry, "time", SimpleNamespace(time=clock.time))
    return clock


@pytest.fixture
async def redis_registries(redis_url, clock):
    """Makes RedisRegistry objects sharing one key prefix, as daphne instances share one Redis."""
    prefix = f"test-registry-{uuid.uuid4().hex}"
    made: list[RedisRegistry] = []

    def make() -> RedisRegistry:
        made.append(RedisRegistry(redis_url, prefix=prefix))
        return made[-1]

    yield make
    for each in made:
        # Released first, so a refresher ends by itself even if a cancel lands where Python 3.11's
        # asyncio.wait_for (inside redis-py) swallows it.
        for conn_id in list(each._local):
            await each.release(conn_id)
        if each._refresher is not None:
            each._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(each._refresher, TIMEOUT)
        for client in each._clients.values():
            await client.aclose()
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
def any_registry(request):
    """What both registries must do alike."""
    if request.param == "memory":
        return MemoryRegistry()
    return request.getfixturevalue("redis_registries")()


# --- both registries ------------------------------------------------------------------------------


async def test_a_new_registry_reports_no_connections(any_registry):
    assert await any_registry.status() == Status(active_connections=0, total_subscriptions=0)


async def test_an_admitted_connection_is_counted_by_endpoint_and_user(any_registry):
    assert await any_registry.acquire(conn(user_id=7, endpoint="trading"), Limits(per_user=5)) is None
    assert await any_registry.acquire(conn(user_id=None, endpoint="market"), Limits()) is None

    status = await any_registry.status()

    assert status.active_connections == 2
    assert status.by_endpoint == {"trading": 1, "market": 1}
    assert status.user_connections == {"user_7": 1}


async def test_a_user_over_the_limit_is_refused_and_nothing_is_registered(any_registry):
    for _ in range(2):
        assert await any_registry.acquire(conn(user_id=7), Limits(per_user=2)) is None

    assert await any_registry.acquire(conn(user_id=7), Limits(per_user=2)) == "user"
    assert (await any_registry.status()).user_connections == {"user_7": 2}


async def test_the_limit_is_per_user(any_registry):
    assert await any_registry.acquire(conn(user_id=7), Limits(per_user=1)) is None

    assert await any_registry.acquire(conn(user_id=8), Limits(per_user=1)) is None
    assert (await any_registry.status()).user_connections == {"user_7": 1, "user_8": 1}


async def test_without_a_limit_a_user_may_hold_any_number_of_connections(any_registry):
    for _ in range(4):
        assert await any_registry.acquire(conn(user_id=7), Limits()) is None

    assert (await any_registry.status()).user_connections == {"user_7": 4}


async def test_anonymous_connections_are_not_limited(any_registry):
    for _ in range(3):
        assert await any_registry.acquire(conn(user_id=None, endpoint="market"), Limits(per_user=1)) is None

    status = await any_registry.status()
    assert status.active_connections == 3
    assert status.user_connections == {}


async def test_a_released_connection_frees_its_place(any_registry):
    first = conn(user_id=7)
    assert await any_registry.acquire(first, Limits(per_user=1)) is None

    await any_registry.release(first.conn_id)

    assert (await any_registry.status()).active_connections == 0
    assert await any_registry.acquire(conn(user_id=7), Limits(per_user=1)) is None


async def test_releasing_an_unknown_connection_changes_nothing(any_registry):
    assert await any_registry.acquire(conn(), Limits()) is None

    await any_registry.release("no-such-connection")

    assert (await any_registry.status()).active_connections == 1


async def test_subscription_counts_add_up_across_connections(any_registry):
    first, second = conn(user_id=7), conn(user_id=None, endpoint="market")
    for each in (first, second):
        assert await any_registry.acquire(each, Limits()) is None

    await any_registry.set_subscriptions(first.conn_id, 3)
    await any_registry.set_subscriptions(second.conn_id, 4)
    await any_registry.set_subscriptions(first.conn_id, 2)

    assert (await any_registry.status()).total_subscriptions == 6


async def test_subscriptions_of_an_unknown_connection_are_ignored(any_registry):
    assert await any_registry.acquire(conn(), Limits()) is None

    await any_registry.set_subscriptions("no-such-connection", 9)

    status = await any_registry.status()
    assert (status.active_connections, status.total_subscriptions) == (1, 0)


async def test_a_released_connection_no_longer_counts_its_subscriptions(any_registry):
    held = conn()
    assert await any_registry.acquire(held, Limits()) is None
    await any_registry.set_subscriptions(held.conn_id, 5)

    await any_registry.release(held.conn_id)
    await any_registry.set_subscriptions(held.conn_id, 6)

    assert (await any_registry.status()).total_subscriptions == 0


# --- both registries: the per-address limit ------------------------------------------------------


async def test_an_address_over_its_limit_is_refused_as_address_and_nothing_is_registered(any_registry):
    for _ in range(2):
        assert await any_registry.acquire(conn(user_id=None, address="192.0.2.9"), Limits(per_address=2)) is None

    refused = await any_registry.acquire(conn(user_id=None, address="192.0.2.9"), Limits(per_address=2))

    assert refused == "address"
    assert (await any_registry.status()).active_connections == 2


async def test_the_address_limit_is_per_address(any_registry):
    assert await any_registry.acquire(conn(user_id=None, address="192.0.2.9"), Limits(per_address=1)) is None

    assert await any_registry.acquire(conn(user_id=None, address="192.0.2.10"), Limits(per_address=1)) is None
    assert await any_registry.acquire(conn(user_id=None, address="192.0.2.9"), Limits(per_address=1)) == "address"


async def test_the_address_limit_counts_every_user_and_anonymous_connection_from_it(any_registry):
    limits = Limits(per_user=5, per_address=3)
    assert await any_registry.acquire(conn(user_id=None, endpoint="market", address="192.0.2.9"), limits) is None
    assert await any_registry.acquire(conn(user_id=7, address="192.0.2.9"), limits) is None
    assert await any_registry.acquire(conn(user_id=8, address="192.0.2.9"), limits) is None

    assert await any_registry.acquire(conn(user_id=9, address="192.0.2.9"), limits) == "address"
    assert (await any_registry.status()).user_connections == {"user_7": 1, "user_8": 1}


async def test_a_connection_of_unknown_address_is_not_limited_by_address(any_registry):
    for _ in range(3):
        assert await any_registry.acquire(conn(user_id=None, address=None), Limits(per_address=1)) is None

    assert (await any_registry.status()).active_connections == 3


async def test_without_an_address_limit_an_address_may_hold_any_number_of_connections(any_registry):
    for _ in range(4):
        assert await any_registry.acquire(conn(user_id=None, address="192.0.2.9"), Limits(per_user=1)) is None

    assert (await any_registry.status()).active_connections == 4


async def test_when_both_limits_are_full_the_user_limit_is_named(any_registry):
    limits = Limits(per_user=1, per_address=1)
    assert await any_registry.acquire(conn(user_id=7, address="192.0.2.9"), limits) is None

    assert await any_registry.acquire(conn(user_id=7, address="192.0.2.9"), limits) == "user"


async def test_a_user_with_room_is_refused_by_a_full_address_and_takes_no_user_place(any_registry):
    limits = Limits(per_user=2, per_address=1)
    assert await any_registry.acquire(conn(user_id=None, address="192.0.2.9"), limits) is None

    assert await any_registry.acquire(conn(user_id=7, address="192.0.2.9"), limits) == "address"

    for address in ("192.0.2.10", "192.0.2.11"):  # the refused attempt left both of the user's places free
        assert await any_registry.acquire(conn(user_id=7, address=address), limits) is None
    assert await any_registry.acquire(conn(user_id=7, address="192.0.2.12"), limits) == "user"


async def test_a_user_refused_by_its_own_limit_takes_no_address_place(any_registry):
    limits = Limits(per_user=1, per_address=2)
    assert await any_registry.acquire(conn(user_id=7, address="192.0.2.9"), limits) is None
    assert await any_registry.acquire(conn(user_id=7, address="192.0.2.9"), limits) == "user"

    assert await any_registry.acquire(conn(user_id=8, address="192.0.2.9"), limits) is None


async def test_a_released_connection_frees_its_address_place(any_registry):
    first = conn(user_id=None, address="192.0.2.9")
    assert await any_registry.acquire(first, Limits(per_address=1)) is None

    await any_registry.release(first.conn_id)

    assert await any_registry.acquire(conn(user_id=None, address="192.0.2.9"), Limits(per_address=1)) is None


# --- Redis: what several instances share -----------------------------------------------------------


async def test_two_instances_see_each_others_connections(redis_registries):
    one, two = redis_registries(), redis_registries()
    mine = conn(user_id=7, endpoint="trading")
    assert await one.acquire(mine, Limits(per_user=5)) is None
    assert await two.acquire(conn(user_id=None, endpoint="market"), Limits()) is None
    await one.set_subscriptions(mine.conn_id, 3)

    for each in (one, two):
        status = await each.status()
        assert status.active_connections == 2
        assert status.total_subscriptions == 3
        assert status.by_endpoint == {"trading": 1, "market": 1}
        assert status.user_connections == {"user_7": 1}


async def test_the_per_user_limit_holds_across_instances(redis_registries):
    one, two = redis_registries(), redis_registries()
    first = conn(user_id=7)
    assert await one.acquire(first, Limits(per_user=2)) is None
    assert await one.acquire(conn(user_id=7), Limits(per_user=2)) is None

    assert await two.acquire(conn(user_id=7), Limits(per_user=2)) == "user"

    await one.release(first.conn_id)
    assert await two.acquire(conn(user_id=7), Limits(per_user=2)) is None


async def test_an_instance_cannot_release_another_instances_connection(redis_registries):
    one, two = redis_registries(), redis_registries()
    held = conn()
    assert await one.acquire(held, Limits()) is None

    await two.release(held.conn_id)
    await two.set_subscriptions(held.conn_id, 9)

    status = await one.status()
    assert (status.active_connections, status.total_subscriptions) == (1, 0)


async def test_entries_not_refreshed_expire_after_the_entry_ttl(redis_registries, clock):
    one = redis_registries()
    assert await one.acquire(conn(), Limits()) is None

    clock.advance(registry.ENTRY_TTL - 1)
    assert (await one.status()).active_connections == 1
    clock.advance(2)
    assert (await one.status()).active_connections == 0


async def test_a_refreshed_entry_outlives_one_whose_instance_died(redis_registries, clock):
    alive, dead = redis_registries(), redis_registries()
    assert await alive.acquire(conn(user_id=7, endpoint="trading"), Limits()) is None
    assert await dead.acquire(conn(user_id=8, endpoint="market"), Limits()) is None

    clock.advance(registry.ENTRY_TTL - 1)
    await alive.refresh()  # `dead` never refreshes again
    clock.advance(2)

    status = await alive.status()
    assert status.active_connections == 1
    assert status.user_connections == {"user_7": 1}


async def test_a_refresh_in_several_batches_keeps_every_entry(redis_registries, clock, monkeypatch):
    monkeypatch.setattr(registry, "REFRESH_BATCH", 2)
    one = redis_registries()
    for _ in range(5):
        assert await one.acquire(conn(user_id=None, endpoint="market"), Limits()) is None

    clock.advance(registry.ENTRY_TTL - 1)
    await one.refresh()
    clock.advance(2)

    assert (await one.status()).active_connections == 5


async def test_a_connection_released_while_a_refresh_runs_is_not_brought_back(redis_registries, clock, monkeypatch):
    monkeypatch.setattr(registry, "REFRESH_BATCH", 1)
    one = redis_registries()
    first, second = conn(user_id=None, endpoint="market"), conn(user_id=None, endpoint="market")
    for each in (first, second):
        assert await one.acquire(each, Limits()) is None
    real_pipeline = one._redis().pipeline

    def pipeline(*args, **kwargs):
        if second.conn_id in one._local and len(one._local) == 2:
            one._local.pop(second.conn_id)  # as release() does first, while the first batch is sent
        return real_pipeline(*args, **kwargs)

    monkeypatch.setattr(one._redis(), "pipeline", pipeline)
    clock.advance(registry.ENTRY_TTL - 1)
    await one.refresh()
    clock.advance(2)

    assert (await one.status()).active_connections == 1


async def test_a_refresh_keeps_the_subscription_count(redis_registries, clock):
    one = redis_registries()
    held = conn()
    assert await one.acquire(held, Limits()) is None
    await one.set_subscriptions(held.conn_id, 4)

    clock.advance(registry.ENTRY_TTL - 1)
    await one.refresh()
    clock.advance(2)

    assert (await one.status()).total_subscriptions == 4


async def test_an_expired_entry_no_longer_counts_against_the_user_limit(redis_registries, clock):
    dead, alive = redis_registries(), redis_registries()
    assert await dead.acquire(conn(user_id=7), Limits(per_user=1)) is None
    assert await alive.acquire(conn(user_id=7), Limits(per_user=1)) == "user"

    clock.advance(registry.ENTRY_TTL + 1)

    assert await alive.acquire(conn(user_id=7), Limits(per_user=1)) is None


async def test_the_per_address_limit_holds_across_instances(redis_registries):
    one, two = redis_registries(), redis_registries()
    first = conn(user_id=None, endpoint="market", address="192.0.2.9")
    assert await one.acquire(first, Limits(per_address=2)) is None
    assert await two.acquire(conn(user_id=7, address="192.0.2.9"), Limits(per_address=2)) is None

    assert await one.acquire(conn(user_id=None, address="192.0.2.9"), Limits(per_address=2)) == "address"
    assert await two.acquire(conn(user_id=8, address="192.0.2.9"), Limits(per_address=2)) == "address"
    assert await two.acquire(conn(user_id=None, address="192.0.2.10"), Limits(per_address=2)) is None

    await one.release(first.conn_id)
    assert await two.acquire(conn(user_id=None, address="192.0.2.9"), Limits(per_address=2)) is None


async def test_an_expired_entry_no_longer_counts_against_the_address_limit(redis_registries, clock):
    dead, alive = redis_registries(), redis_registries()
    assert await dead.acquire(conn(user_id=None, address="192.0.2.9"), Limits(per_address=1)) is None
    assert await alive.acquire(conn(user_id=None, address="192.0.2.9"), Limits(per_address=1)) == "address"

    clock.advance(registry.ENTRY_TTL + 1)

    assert await alive.acquire(conn(user_id=None, address="192.0.2.9"), Limits(per_address=1)) is None


async def test_a_refreshed_entry_keeps_its_address_place(redis_registries, clock):
    one, other = redis_registries(), redis_registries()
    assert await one.acquire(conn(user_id=7, address="192.0.2.9"), Limits(per_address=1)) is None

    clock.advance(registry.ENTRY_TTL - 1)
    await one.refresh()
    clock.advance(2)

    assert await other.acquire(conn(user_id=8, address="192.0.2.9"), Limits(per_address=1)) == "address"


async def test_an_entry_swept_while_its_refresh_failed_does_not_come_back_for_ever(redis_registries, clock):
    flaky, other = redis_registries(), redis_registries()
    held = conn()
    assert await flaky.acquire(held, Limits()) is None
    clock.advance(registry.ENTRY_TTL + 1)  # `flaky` could not refresh (Redis away for a moment)
    assert (await other.status()).active_connections == 0  # swept

    await flaky.set_subscriptions(held.conn_id, 3)  # then `flaky` dies before its next refresh
    clock.advance(registry.ENTRY_TTL + 1)

    assert (await other.status()).active_connections == 0


async def test_a_shorter_entry_ttl_expires_entries_sooner(redis_registries, clock, monkeypatch):
    monkeypatch.setattr(registry, "ENTRY_TTL", 2.0)
    one = redis_registries()
    assert await one.acquire(conn(), Limits()) is None

    clock.advance(3)

    assert (await one.status()).active_connections == 0


async def test_refresh_with_no_connections_of_its_own_writes_nothing(redis_registries):
    one = redis_registries()

    await one.refresh()

    assert one._clients == {}  # it did not even connect


async def test_the_refresher_runs_every_refresh_interval_and_survives_a_failed_refresh(
    redis_registries, monkeypatch, caplog
):
    monkeypatch.setattr(registry, "REFRESH_EVERY", 0.0)
    one = redis_registries()
    calls = 0
    refreshed_after_a_failure = asyncio.Event()
    real_refresh = one.refresh

    async def refresh() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("Redis away for a moment")
        await real_refresh()
        refreshed_after_a_failure.set()

    one.refresh = refresh

    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        held = conn()
        assert await one.acquire(held, Limits()) is None
        await asyncio.wait_for(refreshed_after_a_failure.wait(), TIMEOUT)

    assert "could not refresh connection registry" in caplog.text
    await one.release(held.conn_id)
    await asyncio.wait_for(one._refresher, TIMEOUT)  # nothing left to refresh: the task ends


async def test_a_new_connection_restarts_a_refresher_that_has_ended(redis_registries, monkeypatch):
    monkeypatch.setattr(registry, "REFRESH_EVERY", 0.0)
    one = redis_registries()
    first = conn()
    assert await one.acquire(first, Limits()) is None
    ended = one._refresher
    await one.release(first.conn_id)
    await asyncio.wait_for(ended, TIMEOUT)

    assert await one.acquire(conn(), Limits()) is None

    assert one._refresher is not ended
    assert not one._refresher.done()


# --- which registry a process uses ---------------------------------------------------------------


@pytest.fixture
def no_registry_yet(monkeypatch):
    monkeypatch.setattr(registry, "_registry", None)


def test_without_redis_the_registry_is_kept_in_memory_once_per_process(no_registry_yet, settings):
    settings.APP = dataclasses.replace(settings.APP, redis_url=None)

    first = get_registry()

    assert isinstance(first, MemoryRegistry)
    assert get_registry() is first


def test_with_redis_the_registry_is_shared_in_redis(no_registry_yet, settings):
    settings.APP = dataclasses.replace(settings.APP, redis_url="redis://127.0.0.1:6379/10")  # not connected yet

    assert isinstance(get_registry(), RedisRegistry)


# --- sweeping and the cached /ws/status figures ----------------------------------------------------


async def test_a_sweep_forgets_the_entries_of_processes_that_stopped_refreshing(redis_registries, clock):
    alive, dead = redis_registries(), redis_registries()
    assert await dead.acquire(conn(user_id=8), Limits()) is None
    assert await dead.acquire(conn(user_id=9), Limits()) is None
    clock.advance(registry.ENTRY_TTL - 1)
    assert await alive.acquire(conn(user_id=7), Limits()) is None
    clock.advance(2)

    assert await alive.sweep() == 2
    assert await alive.sweep() == 0
    assert (await alive.status()).user_connections == {"user_7": 1}


async def test_the_refresher_also_sweeps_dead_processes_entries(redis_registries, clock, monkeypatch):
    monkeypatch.setattr(registry, "REFRESH_EVERY", 0.0)
    alive, dead = redis_registries(), redis_registries()
    assert await dead.acquire(conn(user_id=8), Limits()) is None
    dead._refresher.cancel()  # its process died
    with contextlib.suppress(asyncio.CancelledError):
        await dead._refresher
    clock.advance(registry.ENTRY_TTL + 1)
    swept = asyncio.Event()
    real_sweep = alive.sweep

    async def sweep() -> int:
        count = await real_sweep()
        if count:
            swept.set()
        return count

    alive.sweep = sweep
    assert await alive.acquire(conn(user_id=7), Limits()) is None  # starts the refresher
    await asyncio.wait_for(swept.wait(), TIMEOUT)

    client = aioredis.Redis.from_url(alive._url, decode_responses=True)
    info = await client.hgetall(alive._key("info"))
    await client.aclose()
    assert [value.split("|")[1] for value in info.values()] == ["7"]


async def test_status_now_gives_the_same_figures_as_status(any_registry):
    held = conn(user_id=7)
    assert await any_registry.acquire(held, Limits()) is None
    assert await any_registry.acquire(conn(user_id=None, endpoint="market"), Limits()) is None
    await any_registry.set_subscriptions(held.conn_id, 3)

    now = await asyncio.to_thread(any_registry.status_now)  # from a worker thread, as /ws/status does

    assert now == await any_registry.status()
    assert (now.active_connections, now.total_subscriptions) == (2, 3)


async def test_status_now_sweeps_expired_entries_too(redis_registries, clock):
    one = redis_registries()
    assert await one.acquire(conn(), Limits()) is None
    clock.advance(registry.ENTRY_TTL + 1)

    assert (await asyncio.to_thread(one.status_now)).active_connections == 0
    assert await one.acquire(conn(), Limits()) is None
    assert (await asyncio.to_thread(one.status_now)).active_connections == 1  # its one blocking client again
    one._sync_client.close()


class CountingRegistry:
    def __init__(self) -> None:
        self.calls = 0

    def status_now(self) -> Status:
        self.calls += 1
        return Status(active_connections=self.calls, total_subscriptions=0)


def test_the_status_figures_are_computed_at_most_every_status_max_age(monkeypatch):
    counting, moment = CountingRegistry(), [100.0]
    monkeypatch.setattr(registry, "_registry", counting)
    monkeypatch.setattr(registry, "_status_cache", None)
    monkeypatch.setattr(registry.time, "monotonic", lambda: moment[0])

    first = registry.cached_status()
    moment[0] += registry.STATUS_MAX_AGE
    again = registry.cached_status()
    moment[0] += 0.001
    later = registry.cached_status()

    assert (first.active_connections, again.active_connections, later.active_connections) == (1, 1, 2)
    assert counting.calls == 2
