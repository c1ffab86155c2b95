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


@pytest.fixture
def per_address(settings):
    """Sets WS_MAX_CONNECTIONS_PER_IP and TRUSTED_PROXY_COUNT for the test."""

    def limit(count: int, trusted_proxies: int = 0) -> None:
        settings.APP = dataclasses.replace(
            settings.APP, ws_max_connections_per_ip=count, trusted_proxy_count=trusted_proxies
        )

    return limit


def from_address(peer: str, forwarded_for: str | None = None, **scope) -> dict:
    headers = [] if forwarded_for is None else [(b"x-forwarded-for", forwarded_for.encode())]
    return {"client": (peer, 50000), "headers": headers, **scope}


async def test_an_address_over_its_connection_limit_is_refused_with_4003_and_not_registered(registry, per_address):
    per_address(2)
    for _ in range(2):
        assert await admission.admit(Endpoint.MARKET, from_address("198.51.100.7"), connection(Endpoint.MARKET)) is None

    refusal = await admission.admit(Endpoint.MARKET, from_address("198.51.100.7"), connection(Endpoint.MARKET))

    assert refusal == (Code.TOO_MANY_CONNECTIONS, "Maximum connections exceeded: at most 2 from one address")
    assert (await registry.status()).active_connections == 2
    assert await admission.admit(Endpoint.MARKET, from_address("198.51.100.8"), connection(Endpoint.MARKET)) is None


async def test_trading_and_market_connections_share_their_address_limit(registry, per_address, per_user):
    per_user(5)
    per_address(2)
    market, trading = connection(Endpoint.MARKET), connection(Endpoint.TRADING)
    assert await admission.admit(Endpoint.MARKET, from_address("198.51.100.7"), market) is None
    assert await admission.admit(Endpoint.TRADING, from_address("198.51.100.7", **signed_in()), trading) is None

    refusal = await admission.admit(
        Endpoint.TRADING, from_address("198.51.100.7", **signed_in()), connection(Endpoint.TRADING)
    )

    assert refusal == (Code.TOO_MANY_CONNECTIONS, "Maximum connections exceeded: at most 2 from one address")
    assert (market.address, trading.address) == ("198.51.100.7", "198.51.100.7")


async def test_behind_a_trusted_proxy_the_address_is_the_forwarded_one_and_spoofed_entries_are_ignored(
    registry, per_address
):
    per_address(1, trusted_proxies=1)
    first = connection(Endpoint.MARKET)
    assert await admission.admit(Endpoint.MARKET, from_address("10.0.0.1", "1.1.1.1, 198.51.100.7"), first) is None

    refusal = await admission.admit(
        Endpoint.MARKET, from_address("10.0.0.1", "2.2.2.2, 198.51.100.7"), connection(Endpoint.MARKET)
    )

    assert first.address == "198.51.100.7"
    assert refusal[0] == Code.TOO_MANY_CONNECTIONS
    assert (
        await admission.admit(Endpoint.MARKET, from_address("10.0.0.1", "198.51.100.8"), connection(Endpoint.MARKET))
        is None
    )


async def test_without_a_trusted_proxy_every_client_behind_one_peer_shares_its_address(registry, per_address):
    per_address(1)
    assert (
        await admission.admit(Endpoint.MARKET, from_address("10.0.0.1", "198.51.100.7"), connection(Endpoint.MARKET))
        is None
    )

    refusal = await admission.admit(
        Endpoint.MARKET, from_address("10.0.0.1", "198.51.100.8"), connection(Endpoint.MARKET)
    )

    assert refusal[0] == Code.TOO_MANY_CONNECTIONS


async def test_a_refused_token_takes_no_address_place(registry, per_address):
    per_address(1)
    scope = from_address("198.51.100.7", auth=AuthResult(user=AnonymousUser(), code=Code.AUTH_FAILED, message="no"))
    assert await admission.admit(Endpoint.TRADING, scope, connection(Endpoint.TRADING)) is not None

    assert await admission.admit(Endpoint.MARKET, from_address("198.51.100.7"), connection(Endpoint.MARKET)) is None
