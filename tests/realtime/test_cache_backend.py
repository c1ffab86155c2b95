"""realtime.cache_backend: set_many and aset_each store what Django's set would, with the same expiry,
in one script call."""

from __future__ import annotations

import asyncio

import pytest
import redis

from realtime import cache_backend
from realtime.cache_backend import Cache
from tests.integration.harness import claimed_redis_url


@pytest.fixture(scope="module")
def redis_url():
    with claimed_redis_url("the cache backend tests") as url:
        yield url


@pytest.fixture
def cache(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    return Cache([redis_url], {"KEY_PREFIX": "test"})


def test_set_many_stores_every_value_with_its_timeout(cache, redis_url):
    cache.set_many({"latest:ticker:BTCUSDT": '{"type":"ticker"}', "price": "1.5@17"}, timeout=120)

    assert cache.get_many(["latest:ticker:BTCUSDT", "price"]) == {
        "latest:ticker:BTCUSDT": '{"type":"ticker"}',
        "price": "1.5@17",
    }
    ttl = redis.Redis.from_url(redis_url).ttl(cache.make_key("price"))
    assert 110 < ttl <= 120


def test_set_many_without_a_timeout_keeps_the_values(cache, redis_url):
    cache.set_many({"kept": "yes"}, timeout=None)

    assert cache.get("kept") == "yes"
    assert redis.Redis.from_url(redis_url).ttl(cache.make_key("kept")) == -1


def test_set_many_with_a_zero_timeout_removes_the_keys_as_django_does(cache):
    cache.set("gone", "before")

    cache.set_many({"gone": "after"}, timeout=0)

    assert cache.get("gone") is None


def test_set_many_replaces_values_of_any_type(cache):
    cache.set_many({"n": 1, "d": {"a": [1, 2]}}, timeout=60)
    cache.set_many({"n": 2}, timeout=60)

    assert cache.get_many(["n", "d"]) == {"n": 2, "d": {"a": [1, 2]}}


def test_set_many_is_one_command_to_redis(cache, monkeypatch):
    client = cache._cache._set_each_script.registered_client
    execute, sent = client.execute_command, []

    def recorded(*args, **options):
        sent.append(args[0])
        return execute(*args, **options)

    monkeypatch.setattr(client, "execute_command", recorded)

    cache.set_many({"a": "1", "b": "2", "c": "3"}, timeout=60)

    assert sent == ["EVALSHA"]
    assert cache.get_many(["a", "b", "c"]) == {"a": "1", "b": "2", "c": "3"}


def test_set_many_loads_its_script_again_after_redis_forgot_it(cache, redis_url):
    cache.set_many({"a": "1"}, timeout=60)
    redis.Redis.from_url(redis_url).script_flush()

    cache.set_many({"a": "2"}, timeout=60)

    assert cache.get("a") == "2"


async def test_aset_each_stores_each_value_with_its_own_timeout_for_get_and_get_many(cache, redis_url):
    await cache.aset_each({"price": ("1.5@17", 300), "ticker": ('{"type":"ticker"}', 120), "book": ("b", 15)})

    assert cache.get("price") == "1.5@17"
    assert cache.get_many(["ticker", "book", "missing"]) == {"ticker": '{"type":"ticker"}', "book": "b"}
    client = redis.Redis.from_url(redis_url)
    ttls = {key: client.ttl(cache.make_key(key)) for key in ("price", "ticker", "book")}
    assert 290 < ttls["price"] <= 300
    assert 110 < ttls["ticker"] <= 120
    assert 5 < ttls["book"] <= 15


async def test_aset_each_writes_the_same_bytes_as_set(cache, redis_url):
    values = {"text": '{"type":"orderbook"}', "number": 7, "structure": {"a": [1, 2]}}
    for key, value in values.items():
        cache.set(f"by-set:{key}", value, 60)

    await cache.aset_each({f"by-script:{key}": (value, 60) for key, value in values.items()})

    client = redis.Redis.from_url(redis_url)
    for key in values:
        assert client.get(cache.make_key(f"by-script:{key}")) == client.get(cache.make_key(f"by-set:{key}"))
    assert cache.get_many([f"by-script:{key}" for key in values]) == {f"by-script:{k}": v for k, v in values.items()}


async def test_aset_each_writes_the_same_keys_however_many_it_has_seen(cache, monkeypatch):
    monkeypatch.setattr(cache_backend, "MADE_KEYS", 3)  # past it the remembered keys start over
    for round_ in range(3):
        await cache.aset_each({f"key:{n}": (f"{round_}.{n}", 60) for n in range(5)})

    assert cache.get_many([f"key:{n}" for n in range(5)]) == {f"key:{n}": f"2.{n}" for n in range(5)}
    assert len(cache._made_keys) <= 3


async def test_aset_each_keeps_a_value_without_timeout_and_removes_one_with_a_zero_timeout(cache, redis_url):
    cache.set("gone", "before")

    await cache.aset_each({"kept": ("yes", None), "gone": ("after", 0)})

    assert cache.get("kept") == "yes"
    assert redis.Redis.from_url(redis_url).ttl(cache.make_key("kept")) == -1
    assert cache.get("gone") is None


async def test_aset_each_of_nothing_sends_nothing(cache, monkeypatch):
    monkeypatch.setattr(cache, "_async_set_each", None)  # any call would fail on it

    await cache.aset_each({})


def test_aset_each_works_on_each_event_loop_that_calls_it(cache):
    asyncio.run(cache.aset_each({"first": ("1", 60)}))
    asyncio.run(cache.aset_each({"second": ("2", 60)}))

    assert cache.get_many(["first", "second"]) == {"first": "1", "second": "2"}
