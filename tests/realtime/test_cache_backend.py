"""realtime.cache_backend: set_many stores what Django's would, with the same expiry, without MULTI/EXEC."""

from __future__ import annotations

import pytest
import redis

from realtime.cache_backend import Cache
from tests.integration.harness import claim_redis_db, redis_answers

REDIS_DBS = (10, 15, 13, 14, 12)


@pytest.fixture(scope="module")
def redis_url():
    if not redis_answers():
        pytest.fail("Redis is not answering on 127.0.0.1:6379: start it to run the cache backend tests")
    db, lock = claim_redis_db(REDIS_DBS)
    try:
        yield f"redis://127.0.0.1:6379/{db}"
    finally:
        lock.close()


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
