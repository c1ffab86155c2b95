"""REDIS_URL, plain or naming Sentinels, and what the settings build from it."""

from __future__ import annotations

import asyncio

import pytest
from django.core.exceptions import ImproperlyConfigured

from realtime import redis_client
from tradingsite import config
from tradingsite.settings import caches, channel_layers, databases

SENTINEL_URL = "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380,sentinel-c/mymaster/3"


def test_a_plain_url_is_passed_through_with_its_database():
    target = redis_client.parse("redis://127.0.0.1:6379/4")
    assert target == redis_client.Plain(url="redis://127.0.0.1:6379/4", db=4)


@pytest.mark.parametrize(
    ("url", "db"),
    [("redis://localhost", 0), ("redis://localhost:6379/", 0), ("rediss://h:6380/2?ssl_cert_reqs=none", 2)],
)
def test_a_plain_url_without_a_database_is_database_0(url, db):
    assert redis_client.parse(url).db == db


def test_a_unix_socket_url_takes_its_database_from_the_query():
    assert redis_client.parse("unix:///run/redis.sock?db=5").db == 5


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database():
    target = redis_client.parse(SENTINEL_URL)
    assert target == redis_client.Sentinel(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380), ("sentinel-c", 26379)),
        service="mymaster",
        db=3,
        password="s3cret",
    )


def test_a_sentinel_url_without_a_database_is_database_0():
    assert redis_client.parse("redis+sentinel://[::1]:26379/mymaster").db == 0
    assert redis_client.parse("redis+sentinel://[::1]:26379/mymaster").sentinels == (("::1", 26379),)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/0",
        "127.0.0.1:6379",
        "redis://127.0.0.1:6379/zero",
        "redis+sentinel://h1:26379",
        "redis+sentinel:///mymaster/0",
        "redis+sentinel://h1:port/mymaster/0",
        "redis+sentinel://h1:26379/mymaster/x",
        "redis+sentinel://h1:26379/mymaster/0/extra",
    ],
)
def test_a_malformed_url_is_refused_with_the_expected_form(url):
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        redis_client.parse(url)


def test_config_refuses_a_malformed_redis_url_at_start():
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        config.load({"DJANGO_DEBUG": "1", "REDIS_URL": "redis+sentinel://h1:26379"})


def test_config_accepts_a_sentinel_url():
    loaded = config.load({"DJANGO_DEBUG": "1", "REDIS_URL": SENTINEL_URL})
    assert loaded.redis_url == SENTINEL_URL and not loaded.embedded


def test_channel_layers_follow_the_sentinels():
    layers = channel_layers(SENTINEL_URL)
    for name in ("default", "market"):
        (host,) = layers[name]["CONFIG"]["hosts"]
        assert host["master_name"] == "mymaster"
        assert host["sentinels"] == [["10.0.0.1", 26379], ["10.0.0.2", 26380], ["sentinel-c", 26379]]
        assert host["db"] == 3 and host["password"] == "s3cret"
        assert host["socket_timeout"] == 30  # outlasts the core layer's blocking pop
    assert layers["market"]["CONFIG"]["prefix"] == "tgm.db3"


def test_channels_redis_builds_a_sentinel_pool_from_that_host():
    from channels_redis.utils import create_pool
    from redis.asyncio.sentinel import SentinelConnectionPool

    (host,) = channel_layers(SENTINEL_URL)["default"]["CONFIG"]["hosts"]
    pool = create_pool(host)
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "mymaster"


def test_a_plain_url_keeps_its_channels_redis_address():
    (host,) = channel_layers("redis://127.0.0.1:6379/7")["default"]["CONFIG"]["hosts"]
    assert host["address"] == "redis://127.0.0.1:6379/7"
    assert channel_layers("redis://127.0.0.1:6379/7")["default"]["CONFIG"]["prefix"] == "tg.db7"


def test_the_cache_is_not_split_on_the_sentinel_hosts_commas():
    from redis.sentinel import SentinelConnectionPool

    cache = caches(SENTINEL_URL)["default"]
    assert cache["LOCATION"] == [SENTINEL_URL]
    options = {k: v for k, v in cache["OPTIONS"].items() if k != "pool_class"}
    pool = redis_client.CachePool.from_url(cache["LOCATION"][0], **options)
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.connection_kwargs["db"] == 3


def test_the_async_client_asks_the_sentinels_for_the_master():
    from redis.asyncio.sentinel import SentinelConnectionPool

    client = redis_client.async_client(SENTINEL_URL, decode_responses=True)
    assert isinstance(client.connection_pool, SentinelConnectionPool)
    assert client.connection_pool.connection_kwargs["decode_responses"] is True


def test_per_loop_builds_one_value_for_each_event_loop_and_forgets_closed_loops():
    per_loop = redis_client.PerLoop(object)

    async def twice():
        return per_loop.get(), per_loop.get()

    first, again = asyncio.run(twice())
    (second, _again) = asyncio.run(twice())

    assert first is again
    assert second is not first
    assert len(per_loop._by_loop) == 1  # the first loop closed: its value was dropped


def test_postgres_gets_a_checked_connection_pool():
    (db,) = databases("postgres://u@db:5432/trading", pool_size=8, conn_max_age=0).values()
    pool = db["OPTIONS"]["pool"]
    assert pool["max_size"] == 8
    assert db["CONN_HEALTH_CHECKS"] is True  # Django then hands the pool psycopg's connection check
    assert db["CONN_MAX_AGE"] == 0  # pooling and persistent connections exclude each other


def test_without_a_pool_postgres_keeps_checked_persistent_connections():
    (db,) = databases("postgres://u@db:5432/trading", pool_size=0, conn_max_age=60).values()
    assert "pool" not in db.get("OPTIONS", {})
    assert db["CONN_MAX_AGE"] == 60 and db["CONN_HEALTH_CHECKS"] is True


def test_sqlite_stays_the_default():
    (db,) = databases("", pool_size=10, conn_max_age=0).values()
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


@pytest.mark.parametrize("value", ["0", "0.5", "-1", "soon"])
def test_a_lease_ttl_under_a_second_is_refused(value):
    with pytest.raises(ImproperlyConfigured, match="WORKER_LEASE_TTL"):
        config.load({"DJANGO_DEBUG": "1", "WORKER_LEASE_TTL": value})


def test_production_settings_come_from_the_environment():
    loaded = config.load(
        {
            "DJANGO_DEBUG": "1",
            "DATABASE_POOL_SIZE": "4",
            "DATABASE_CONN_MAX_AGE": "60",
            "WORKER_LEASE_TTL": "2.5",
            "WORKER_METRICS_PORT": "9101",
            "WORKER_METRICS_ADDR": "0.0.0.0",
        }
    )
    assert (loaded.database_pool_size, loaded.database_conn_max_age) == (4, 60)
    assert (loaded.worker_lease_ttl, loaded.worker_metrics_port, loaded.worker_metrics_addr) == (2.5, 9101, "0.0.0.0")


def test_production_settings_have_safe_defaults():
    loaded = config.load({"DJANGO_DEBUG": "1"})
    assert (loaded.database_pool_size, loaded.database_conn_max_age, loaded.worker_lease_ttl) == (10, 0, 5.0)
    assert loaded.worker_metrics_port == 0 and loaded.worker_metrics_addr == "127.0.0.1"


@pytest.mark.parametrize(("name", "value"), [("DATABASE_POOL_SIZE", "-1"), ("WORKER_METRICS_PORT", "http")])
def test_bad_production_settings_are_refused(name, value):
    with pytest.raises(ImproperlyConfigured, match=name):
        config.load({"DJANGO_DEBUG": "1", name: value})
