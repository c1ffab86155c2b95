"""marketdata.latest: many prices and snapshots stored at once, read back as single stores would be,
on the process-memory cache (embedded mode, through a thread) and on the Redis cache (one script call
from the event loop, in the real local Redis: a database claimed with the same file lock as the other
suites' databases)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis
from django.core.cache import cache

from marketdata import latest
from tests.integration.harness import claimed_redis_url
from tradingsite.settings import caches


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


async def test_market_state_stores_prices_and_snapshots_as_single_writes_would():
    await latest.astore_market_state(
        prices={"BTCUSDT": ("50000.10", 1_700_000_000_000), "ETHUSDT": ("3000", None)},
        snapshots={("ticker", "BTCUSDT"): '{"type":"ticker"}', ("orderbook", "BTCUSDT"): '{"type":"orderbook"}'},
    )

    btc = latest.last_trade("BTCUSDT")
    assert btc == latest.LastTrade(Decimal("50000.10"), 1_700_000_000_000)
    assert latest.last_trade("ETHUSDT").price == Decimal("3000")
    assert latest.last_trade("ETHUSDT").age() < 60  # stamped when stored
    assert await latest.asnapshots("ticker", ["BTCUSDT", "ETHUSDT"]) == {"BTCUSDT": '{"type":"ticker"}'}
    assert await latest.asnapshots("orderbook", ["BTCUSDT"]) == {"BTCUSDT": '{"type":"orderbook"}'}


async def test_market_state_on_another_cache_is_its_set_many_per_ttl(monkeypatch):
    written = []
    monkeypatch.setattr(latest._cache(), "set_many", lambda values, ttl: written.append((ttl, values)))

    await latest.astore_market_state(
        prices={"BTCUSDT": ("1", 5)},
        snapshots={("ticker", "BTCUSDT"): "t", ("orderbook", "BTCUSDT"): "b", ("orderbook", "ETHUSDT"): "e"},
    )

    assert sorted(written) == [
        (latest.BOOK_SNAPSHOT_TTL_SECONDS, {"latest:orderbook:BTCUSDT": "b", "latest:orderbook:ETHUSDT": "e"}),
        (latest.SNAPSHOT_TTL_SECONDS, {"latest:ticker:BTCUSDT": "t"}),
        (latest.PRICE_TTL_SECONDS, {"last_trade_price:BTCUSDT": "1@5"}),
    ]


async def test_market_state_with_nothing_to_store_stores_nothing():
    await latest.astore_market_state()
    await latest.astore_market_state(prices={}, snapshots={})
    assert latest.last_trade("BTCUSDT") is None


# --- on the Redis cache (the deployment with REDIS_URL) -------------------------------------------


@pytest.fixture(scope="module")
def redis_url():
    with claimed_redis_url("the market state tests") as url:
        yield url


@pytest.fixture
def redis_cache(settings, redis_url):
    """The process's cache is the project's Redis backend, as settings build it with REDIS_URL."""
    redis.Redis.from_url(redis_url).flushdb()
    settings.CACHES = caches(redis_url)
    return latest._cache()


async def test_market_state_on_redis_is_one_script_call_from_the_event_loop(redis_cache, monkeypatch):
    def no_thread(*args, **kwargs):
        raise AssertionError("the Redis cache is written from the event loop")

    monkeypatch.setattr(latest, "sync_to_async", no_thread)

    await latest.astore_market_state(
        prices={"BTCUSDT": ("50000.10", 1_700_000_000_000)}, snapshots={("ticker", "BTCUSDT"): '{"type":"ticker"}'}
    )

    assert latest.last_trade("BTCUSDT") == latest.LastTrade(Decimal("50000.10"), 1_700_000_000_000)


async def test_market_state_on_redis_reads_back_through_the_cache_with_each_kinds_ttl(redis_cache, redis_url):
    book = '{"type":"orderbook","bids":[["100.5","2"]],"asks":[["101","1.5"]]}'

    await latest.astore_market_state(
        prices={"BTCUSDT": ("50000.10", 1_700_000_000_000), "ETHUSDT": ("3000", None)},
        snapshots={("ticker", "BTCUSDT"): '{"type":"ticker"}', ("orderbook", "BTCUSDT"): book},
    )

    assert latest.last_trade("BTCUSDT") == latest.LastTrade(Decimal("50000.10"), 1_700_000_000_000)
    assert latest.last_trade("ETHUSDT").age() < 60
    assert await latest.asnapshots("ticker", ["BTCUSDT", "ETHUSDT"]) == {"BTCUSDT": '{"type":"ticker"}'}
    assert latest.order_book("BTCUSDT") == latest.StoredBook(
        bids=((Decimal("100.5"), Decimal("2")),), asks=((Decimal("101"), Decimal("1.5")),)
    )
    client = redis.Redis.from_url(redis_url)

    def ttl(key: str) -> int:
        return client.ttl(redis_cache.make_key(key))

    assert latest.PRICE_TTL_SECONDS - 10 < ttl("last_trade_price:BTCUSDT") <= latest.PRICE_TTL_SECONDS
    assert latest.SNAPSHOT_TTL_SECONDS - 10 < ttl("latest:ticker:BTCUSDT") <= latest.SNAPSHOT_TTL_SECONDS
    assert latest.BOOK_SNAPSHOT_TTL_SECONDS - 10 < ttl("latest:orderbook:BTCUSDT") <= latest.BOOK_SNAPSHOT_TTL_SECONDS


async def test_market_state_on_redis_replaces_what_single_stores_wrote(redis_cache):
    await latest.astore_snapshot("ticker", "BTCUSDT", '{"type":"ticker","n":1}')
    latest.record_trade_price("BTCUSDT", "1", at_ms=1)

    await latest.astore_market_state(
        prices={"BTCUSDT": ("2", 2)}, snapshots={("ticker", "BTCUSDT"): '{"type":"ticker","n":2}'}
    )

    assert latest.last_trade("BTCUSDT") == latest.LastTrade(Decimal("2"), 2)
    assert await latest.asnapshots("ticker", ["BTCUSDT"]) == {"BTCUSDT": '{"type":"ticker","n":2}'}


async def test_clearing_a_snapshot_on_redis_is_done_from_the_event_loop(redis_cache, monkeypatch):
    book = '{"type":"orderbook","bids":[["100.5","2"]],"asks":[["101","1.5"]]}'
    await latest.astore_market_state(snapshots={("orderbook", "BTCUSDT"): book, ("orderbook", "ETHUSDT"): book})
    assert latest.order_book("BTCUSDT") is not None

    async def no_thread_hop(*args, **kwargs):  # Django's adelete runs in the ORM's thread
        raise AssertionError("cleared through the ORM's thread, behind the paper engine's queries")

    monkeypatch.setattr(redis_cache, "adelete", no_thread_hop)
    await latest.aclear_snapshot("orderbook", "BTCUSDT")

    assert latest.order_book("BTCUSDT") is None
    assert latest.order_book("ETHUSDT") is not None  # only the one asked
