"""WS_MAX_CONNECTIONS_PER_IP: one client address holds at most 100 connections across every instance;
the newest over it gets an error frame and close 4003, and other addresses are not affected."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.integration.harness import Client
from tests.support import TIMEOUT

LIMIT = 100  # the default


@pytest.fixture(scope="module")
def proxied_gateways(security_stack):
    """Two instances behind one trusted proxy: the client address is the last X-Forwarded-For entry."""
    return [security_stack.daphne(None, TRUSTED_PROXY_COUNT="1") for _ in range(2)]


async def connect_from(gateway, address: str) -> Client:
    return await Client.connect(f"{gateway.ws}/ws/market", additional_headers={"X-Forwarded-For": address})


async def admitted(client: Client) -> bool:
    """True when the connection answers a ping; False when it was refused with 4003."""
    with contextlib.suppress(Exception):
        await client.send({"type": "ping"})
    reply = await client.recv_until(lambda m: m["type"] in {"pong", "error"})
    if reply["type"] == "error":
        assert reply["code"] == 4003 and "from one address" in reply["message"], reply
        code, _reason = await client.closed()
        assert code == 4003
        return False
    return True


async def test_the_101st_connection_from_one_address_is_refused_across_two_instances(proxied_gateways):
    first, second = proxied_gateways
    opened: list[Client] = []
    try:
        for index in range(LIMIT):
            client = await connect_from(first if index % 2 else second, "203.0.113.77")
            opened.append(client)
        assert all(await asyncio.wait_for(asyncio.gather(*(admitted(c) for c in opened)), TIMEOUT * 3))
        for gateway in (first, second):
            newest = await connect_from(gateway, "203.0.113.77")
            assert not await admitted(newest)
        # Another address, through the same proxy and instances, still gets in: the limit is per address.
        other = await connect_from(first, "198.51.100.8")
        assert await admitted(other)
        await other.close()
        # A place given back is free again, on whichever instance.
        await opened.pop().close()
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while not await admitted(again := await connect_from(second, "203.0.113.77")):
            assert asyncio.get_running_loop().time() < deadline, "the freed place was never given back"
        opened.append(again)
    finally:
        await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)
