"""realtime.admission: who may hold a connection; a refused one is never registered."""

from __future__ import annotations

import dataclasses
import uuid
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser

from realtime import admission
from realtime.middleware import AuthResult
from realtime.protocol import Code, Endpoint
from realtime.registry import Connection, MemoryRegistry

USER = SimpleNamespace(pk=7)


def connection(endpoint: Endpoint) -> Connection:
    return Connection(uuid.uuid4().hex, str(endpoint), None)


def signed_in(user=USER) -> dict:
    return {"auth": AuthResult(user=user, expires_at=4102444800)}


@pytest.fixture
def registry(monkeypatch) -> MemoryRegistry:
    memory = MemoryRegistry()
    monkeypatch.setattr(admission, "get_registry", lambda: memory)
    return memory


@pytest.fixture
def per_user(settings):
    """Sets WS_MAX_CONNECTIONS_PER_USER for the test."""

    def limit(count: int) -> None:
        settings.APP = dataclasses.replace(settings.APP, ws_max_connections_per_user=count)

    return limit


async def test_anyone_may_watch_the_market_without_a_token(registry):
    conn = connection(Endpoint.MARKET)

    assert await admission.admit(Endpoint.MARKET, {}, conn) is None

    assert conn.user_id is None
    assert (await registry.status()).active_connections == 1


async def test_market_connections_are_not_limited_per_user(registry, per_user):
    per_user(1)
    for _ in range(3):
        assert await admission.admit(Endpoint.MARKET, signed_in(), connection(Endpoint.MARKET)) is None


async def test_a_signed_in_user_is_admitted_to_trading_and_registered_as_that_user(registry):
    conn = connection(Endpoint.TRADING)

    assert await admission.admit(Endpoint.TRADING, signed_in(), conn) is None

    assert conn.user_id == USER.pk
    assert (await registry.status()).user_connections == {"user_7": 1}


async def test_trading_without_a_token_verdict_is_refused_with_4001(registry):
    refusal = await admission.admit(Endpoint.TRADING, {}, connection(Endpoint.TRADING))

    assert refusal == (Code.AUTH_FAILED, "Authentication required")
    assert (await registry.status()).active_connections == 0


@pytest.mark.parametrize(
    ("code", "message"),
    [(Code.AUTH_FAILED, "Token expired"), (Code.USER_INACTIVE, "User inactive or not found")],
)
async def test_a_refused_token_is_answered_with_its_own_code_and_message(registry, code, message):
    scope = {"auth": AuthResult(user=AnonymousUser(), code=code, message=message)}
    conn = connection(Endpoint.TRADING)

    assert await admission.admit(Endpoint.TRADING, scope, conn) == (code, message)
    assert conn.user_id is None
    assert (await registry.status()).active_connections == 0


async def test_a_user_over_the_connection_limit_is_refused_with_4003_and_not_registered(registry, per_user):
    per_user(2)
    for _ in range(2):
        assert await admission.admit(Endpoint.TRADING, signed_in(), connection(Endpoint.TRADING)) is None

    refusal = await admission.admit(Endpoint.TRADING, signed_in(), connection(Endpoint.TRADING))

    assert refusal == (Code.TOO_MANY_CONNECTIONS, "Maximum connections exceeded: at most 2 per user")
    assert (await registry.status()).user_connections == {"user_7": 2}


async def test_the_connection_limit_does_not_touch_other_users(registry, per_user):
    per_user(1)
    assert await admission.admit(Endpoint.TRADING, signed_in(), connection(Endpoint.TRADING)) is None

    other = signed_in(SimpleNamespace(pk=8))
    assert await admission.admit(Endpoint.TRADING, other, connection(Endpoint.TRADING)) is None
