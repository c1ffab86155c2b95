"""Fixtures that start the real system: Redis (must answer), a migrated SQLite file, daphne processes."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import redis
from django.conf import settings

from tests.integration import harness

# Pairs of Redis databases of the session's own (the second for the live worker, so its market data
# never reaches the `gateway` fixture's clients); a file lock keeps test runs side by side apart.
REDIS_DB_CANDIDATES = (9, 7, 5, 3)

USERS_SCRIPT = """
import json
from django.contrib.auth import get_user_model
User = get_user_model()
spec = {"alice": dict(), "bob": dict(), "carol": dict(is_active=False), "staff": dict(is_staff=True),
        "dave": dict(), "erin": dict()}
ids = {}
for name, extra in spec.items():
    user, _ = User.objects.update_or_create(username=name, defaults=extra)
    user.set_password(name + "-password-1")
    user.save()
    ids[name] = user.pk
print(json.dumps(ids))
"""


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    if not harness.redis_answers():
        pytest.fail("Redis is not answering on 127.0.0.1:6379: start it (.ci/run does) to run integration tests")
    db, lock = harness.claim_redis_db(REDIS_DB_CANDIDATES)
    for number in (db, db - 1):
        redis.Redis(host="127.0.0.1", port=6379, db=number).flushdb()
    workdir = tmp_path_factory.mktemp("stack")
    stack = harness.Stack(
        workdir=workdir,
        redis_url=f"redis://127.0.0.1:6379/{db}",
        database_path=workdir / "db.sqlite3",
        extra_env={"DJANGO_SECRET_KEY": settings.SECRET_KEY},
    )
    try:
        stack.manage("migrate", "--no-input")
        stack.users = json.loads(stack.manage("shell", "-c", USERS_SCRIPT).stdout.strip().splitlines()[-1])
        yield stack
    finally:
        stack.stop_all()
        lock.close()


@pytest.fixture(scope="session")
def gateway(stack):
    """One daphne instance on Redis, shared by the tests that do not change its settings."""
    return stack.daphne()


@pytest.fixture(scope="session")
def second_gateway(stack):
    """A second daphne instance on the same Redis: what one instance knows, both must know."""
    return stack.daphne()


@pytest.fixture
def redis_publish(stack, settings):
    """Publish through realtime.publish from the test process onto the stack's Redis layers and cache."""
    from channels.layers import channel_layers

    from realtime import history, publish
    from tradingsite.settings import caches
    from tradingsite.settings import channel_layers as layers_for

    settings.CHANNEL_LAYERS = layers_for(stack.redis_url)
    settings.CACHES = caches(stack.redis_url)
    channel_layers.backends.clear()
    app = settings.APP  # the stack's daphnes number events in the same Redis history
    history.set_history(history.RedisHistory(stack.redis_url, app.ws_history_size, app.ws_history_ttl))
    yield publish
    history.set_history(None)
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def print_logs_on_failure(request, stack):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(stack.logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@dataclass
class Exchange:
    """The local exchange in a subprocess, with its test-control endpoints."""

    service: harness.Service
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def control(self, action: str, **body) -> dict:
        status, reply = await harness.ahttp_json("POST", f"{self.rest_url}/_sim/{action}", body)
        assert status == 200, reply
        return reply

    def state(self) -> dict:
        return harness.http_json("GET", f"{self.rest_url}/_sim/state")[1]


def start_exchange(stack, *args: str) -> Exchange:
    port = harness.free_port()
    service = stack.spawn("exchange", [harness.PYTHON, "manage.py", "simulate_exchange", "--port", str(port), *args])
    exchange = Exchange(service, port)
    harness.wait_until_http(f"{exchange.rest_url}/api/v3/ping", service)
    return exchange


def start_worker(stack, exchange: Exchange, **env: str) -> harness.Service:
    return stack.spawn(
        "runstream",
        [harness.PYTHON, "manage.py", "runstream"],
        BINANCE_WS_URL=exchange.ws_url,
        BINANCE_REST_URL=exchange.rest_url,
        MARKET_SOURCE="simulator",
        **env,
    )


@pytest.fixture(scope="session")
def exchange(stack):
    """A local exchange whose only trades are the ones a test prints (deterministic fills)."""
    return start_exchange(stack, "--trade-chance", "0", "--seed", "7")


@pytest.fixture(scope="session")
def live_redis_url(stack):
    base, db = stack.redis_url.rsplit("/", 1)
    return f"{base}/{int(db) - 1}"


@pytest.fixture(scope="session")
def live_gateway(stack, live_redis_url):
    """A daphne fed by the live worker (its own Redis database, the shared SQLite file)."""
    return stack.daphne(None, REDIS_URL=live_redis_url)


@pytest.fixture(scope="session")
def worker(stack, exchange, live_gateway, live_redis_url):
    service = start_worker(stack, exchange, REDIS_URL=live_redis_url)
    harness.wait_until(lambda: leads_and_streams(live_gateway, service), service, "the worker never led and connected")
    return service


def leads_and_streams(gateway, service) -> bool:
    """This worker holds the lease and is connected: not a record left by an earlier run's worker."""
    market = gateway.status()["market_data"]
    leader = market.get("leader") or {}
    return bool(market.get("connected")) and str(leader.get("worker", "")).endswith(f":{service.process.pid}")
