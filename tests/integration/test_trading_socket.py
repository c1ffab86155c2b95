"""/ws/trading over real sockets: daphne in a subprocess, Redis, `websockets` clients."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest
import websockets
from asgiref.sync import sync_to_async

from realtime import publish
from tests import messages
from tests.integration.harness import Client, ahttp_json, status_when
from tests.support import TIMEOUT, access_token, forged_token, refresh_token

pytestmark = pytest.mark.django_db(transaction=False)


def trading_url(gateway, token: str | None) -> str:
    return f"{gateway.ws}/ws/trading" + (f"?token={token}" if token else "")


async def connect_user(gateway, user_id: int) -> Client:
    return await Client.connect(trading_url(gateway, access_token(user_id)))


async def expect_refusal(url: str, code: int, **kwargs) -> dict:
    """The error frame, then a close with the same code, after the handshake succeeded."""
    client = await Client.connect(url, **kwargs)
    error = await client.recv()
    closed = await client.closed()
    assert error["type"] == "error" and error["code"] == code, error
    assert closed[0] == code, closed
    assert error["timestamp"].endswith("Z")
    return error


def order_update_for(order_id: int) -> dict:
    return messages.order_update_fields(order_id=order_id)


# --- authentication -------------------------------------------------------------------------------


async def test_connection_without_token_is_refused_with_4001_after_accept(gateway):
    error = await expect_refusal(trading_url(gateway, None), 4001)
    assert "token" in error["message"].lower()


async def test_forged_token_is_refused_with_4001(gateway, stack):
    await expect_refusal(trading_url(gateway, forged_token(stack.users["alice"])), 4001)


async def test_expired_token_is_refused_with_4001(gateway, stack):
    expired = access_token(stack.users["alice"], lifetime=-timedelta(seconds=5))
    await expect_refusal(trading_url(gateway, expired), 4001)


async def test_refresh_token_is_refused_as_access(gateway, stack):
    await expect_refusal(trading_url(gateway, refresh_token(stack.users["alice"])), 4001)


async def test_inactive_user_is_refused_with_4002(gateway, stack):
    await expect_refusal(trading_url(gateway, access_token(stack.users["carol"])), 4002)


async def test_missing_user_is_refused_with_4002(gateway):
    await expect_refusal(trading_url(gateway, access_token(987654)), 4002)


async def test_token_from_authorization_header_is_accepted(gateway, stack):
    headers = {"Authorization": f"Bearer {access_token(stack.users['alice'])}"}
    async with await Client.connect(trading_url(gateway, None), additional_headers=headers) as client:
        assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"


async def test_token_from_subprotocol_is_accepted_and_bearer_echoed(gateway, stack):
    token = access_token(stack.users["alice"])
    async with await Client.connect(trading_url(gateway, None), subprotocols=["bearer", token]) as client:
        assert client.ws.subprotocol == "bearer"
        assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"


async def test_token_endpoint_issues_tokens_that_open_the_trading_socket(gateway):
    status, body = await ahttp_json(
        "POST", f"{gateway.http}/api/token/", {"username": "alice", "password": "alice-password-1"}
    )
    assert status == 200 and {"access", "refresh"} <= body.keys()
    async with await Client.connect(trading_url(gateway, body["access"])) as client:
        ack = await client.request({"type": "subscribe", "channels": ["risk_alerts"]})
    assert ack["type"] == "subscribed" and ack["channels"] == ["risk_alerts"]


async def test_browser_origin_not_in_allowed_hosts_is_refused(gateway, stack):
    with pytest.raises(Exception, match="403"):
        await Client.connect(trading_url(gateway, access_token(stack.users["alice"])), origin="https://evil.example")


async def test_browser_origin_of_an_allowed_host_is_accepted(gateway, stack):
    url = trading_url(gateway, access_token(stack.users["alice"]))
    async with await Client.connect(url, origin=f"http://127.0.0.1:{gateway.port}") as client:
        assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"


# --- requests, acks and errors --------------------------------------------------------------------


async def test_subscribe_and_unsubscribe_are_acknowledged(gateway, stack):
    async with await connect_user(gateway, stack.users["alice"]) as client:
        ack = await client.request(
            {"type": "subscribe", "channels": ["orders", "risk_alerts", "bot_status", "portfolio"]}
        )
        assert ack == {**ack, "type": "subscribed", "channels": ["orders", "risk_alerts", "bot_status", "portfolio"]}
        ack = await client.request({"type": "unsubscribe", "channels": ["orders"]})
        assert ack["type"] == "unsubscribed" and ack["channels"] == ["orders"]


async def test_subscribe_symbol_is_acknowledged_with_the_symbols(gateway, stack):
    async with await connect_user(gateway, stack.users["alice"]) as client:
        ack = await client.request({"type": "subscribe_symbol", "symbols": ["btcusdt", "ETHUSDT"]})
    assert ack["type"] == "subscribed" and ack["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert "stream" not in ack


async def test_ping_gets_pong_with_timestamp(gateway, stack):
    async with await connect_user(gateway, stack.users["alice"]) as client:
        pong = await client.request({"type": "ping"}, "pong")
    assert pong["timestamp"].endswith("Z")


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        "[1, 2]",
        '{"type": 5}',
        '{"type": "launch_rockets"}',
        '{"type": "subscribe", "channels": "orders"}',
        '{"type": "subscribe", "channels": [1]}',
        '{"type": "subscribe_ticker", "symbols": ["BTCUSDT"]}',
    ],
)
async def test_invalid_message_gets_4004_and_the_connection_stays_open(gateway, stack, frame):
    async with await connect_user(gateway, stack.users["alice"]) as client:
        error = await client.request(frame, "error")
        assert error["code"] == 4004 and error["message"]
        assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"


async def test_unknown_channel_is_rejected_whole_and_nothing_is_subscribed(gateway, stack, redis_publish):
    user = stack.users["dave"]
    async with await connect_user(gateway, user) as client:
        error = await client.request({"type": "subscribe", "channels": ["orders", "secrets"]})
        assert error["code"] == 4004 and "secrets" in error["message"]
        # Proof that messages do arrive on this connection, and that 'orders' was not subscribed:
        await client.subscribe({"type": "subscribe", "channels": ["risk_alerts"]})
        await sync_to_async(publish.publish_order_update)(user, **order_update_for(1))
        await sync_to_async(publish.publish_risk_alert)(
            user, alert_type="position_limit_exceeded", severity="high", message="m", limit_value="1", current_value="2"
        )
        arrived = await client.recv_until(lambda m: m["type"] in {"order_update", "risk_alert"})
    assert arrived["type"] == "risk_alert"


async def test_unknown_symbol_is_rejected_whole(gateway, stack):
    async with await connect_user(gateway, stack.users["alice"]) as client:
        error = await client.request({"type": "subscribe_symbol", "symbols": ["BTCUSDT", "NOPECOIN"]})
        assert error["code"] == 4004 and "NOPECOIN" in error["message"] and "BTCUSDT" not in error.get("invalid", [])


async def test_oversized_frame_is_refused_and_changes_nothing(gateway, stack):
    async with await connect_user(gateway, stack.users["alice"]) as client:
        huge = '{"type": "subscribe", "channels": ["orders"], "pad": "' + "x" * 70_000 + '"}'
        error = await client.request(huge, "error")
        assert error["code"] == 4004 and "too large" in error["message"]
        assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"


# --- isolation ------------------------------------------------------------------------------------


async def test_a_user_receives_only_its_own_trading_events(gateway, second_gateway, stack, redis_publish):
    alice, bob = stack.users["alice"], stack.users["bob"]
    async with await connect_user(gateway, alice) as a, await connect_user(second_gateway, bob) as b:
        for client in (a, b):
            await client.subscribe({"type": "subscribe", "channels": ["orders", "risk_alerts"]})
        await sync_to_async(publish.publish_order_update)(alice, **order_update_for(111))
        await sync_to_async(publish.publish_order_update)(bob, **order_update_for(222))
        got_a = await a.recv_until(lambda m: m["type"] == "order_update" and m["order_id"] in {"111", "222"})
        got_b = await b.recv_until(lambda m: m["type"] == "order_update" and m["order_id"] in {"111", "222"})
        assert got_a["order_id"] == "111" and got_b["order_id"] == "222"
        # Each connection has proven it receives; a marker published last shows nothing else was queued.
        await sync_to_async(publish.publish_order_update)(alice, **order_update_for(333))
        nxt = await a.recv_until(lambda m: m["type"] == "order_update")
        assert nxt["order_id"] == "333"
    assert got_a["filled_quantity"] == "0.5" and got_a["average_price"] == "50000"


# --- limits ---------------------------------------------------------------------------------------


async def test_sixth_connection_is_refused_across_two_daphne_processes(gateway, second_gateway, stack):
    user = stack.users["erin"]
    clients = []
    try:
        for index in range(5):
            target = gateway if index % 2 == 0 else second_gateway
            client = await connect_user(target, user)
            assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"
            clients.append(client)
        await expect_refusal(trading_url(second_gateway, access_token(user)), 4003)
        await expect_refusal(trading_url(gateway, access_token(user)), 4003)
        # Closing one frees a place, on whichever instance, once the server has seen the close.
        await clients.pop().close()
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            client = await connect_user(second_gateway, user)
            with contextlib.suppress(websockets.ConnectionClosed):
                await client.send({"type": "ping"})  # a refused connection is closing already
            reply = await client.recv_until(lambda m: m["type"] in {"pong", "error"})
            if reply["type"] == "pong":
                clients.append(client)
                break
            await client.close()
            assert asyncio.get_running_loop().time() < deadline, "the freed place was never given back"
    finally:
        for client in clients:
            await client.close()


async def test_flooding_gets_4029_errors_then_a_4029_close(gateway, stack):
    async with await connect_user(gateway, stack.users["bob"]) as client:
        for _ in range(200):
            await client.send({"type": "ping"})
        seen_error = await client.recv_until(lambda m: m["type"] == "error")
        assert seen_error["code"] == 4029
        code, _reason = await client.closed()
    assert code == 4029


async def test_status_counts_connections_and_subscriptions_across_instances(gateway, second_gateway, stack):
    staff = access_token(stack.users["staff"])
    user = stack.users["dave"]
    async with await connect_user(gateway, user) as a, await connect_user(second_gateway, user) as b:
        await a.subscribe({"type": "subscribe", "channels": ["orders", "portfolio"]})
        await b.subscribe({"type": "subscribe_symbol", "symbols": ["BTCUSDT"]})
        # /ws/status figures are cached for up to 2 s: wait for the first answer that counts both.
        during = await status_when(second_gateway, staff, lambda s: s["user_connections"].get(f"user_{user}") == 2)
        anonymous = gateway.status()
    assert during["status"] == "active"
    # Other tests' connections come and go on the same instances: the user's own figure is exact.
    assert during["active_connections"] >= 2 and during["total_subscriptions"] >= 3
    assert during["user_connections"][f"user_{user}"] == 2
    assert "user_connections" not in anonymous


async def test_status_hides_the_per_user_map_from_non_staff_users(gateway, stack):
    assert "user_connections" not in gateway.status(access_token(stack.users["alice"]))


# --- heartbeat and idle connections ---------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_heartbeat_gateway(stack):
    return stack.daphne(None, "--ping-interval", "2", "--ping-timeout", "5", WS_HEARTBEAT_INTERVAL="2")


async def test_idle_connection_gets_heartbeats_and_stays_open(quick_heartbeat_gateway, stack, redis_publish):
    user = stack.users["alice"]
    async with await connect_user(quick_heartbeat_gateway, user) as client:
        await client.subscribe({"type": "subscribe", "channels": ["orders"]})
        # Idle (the client sends nothing) for longer than every timeout in the stack (daphne ping 2 s,
        # ping timeout 5 s): measured by the server's own heartbeats, every 2 s of silence.
        loop = asyncio.get_running_loop()
        started = loop.time()
        beats = [await client.recv_until(lambda m: m["type"] == "heartbeat", skip_heartbeats=False) for _ in range(5)]
        assert loop.time() - started >= 8
        await sync_to_async(publish.publish_order_update)(user, **order_update_for(444))
        update = await client.recv_until(lambda m: m["type"] == "order_update")
    assert len(beats) == 5 and update["order_id"] == "444"


async def test_a_connection_is_closed_with_4001_when_its_token_expires(gateway, stack):
    short = access_token(stack.users["dave"], lifetime=timedelta(seconds=3))
    async with await Client.connect(trading_url(gateway, short)) as client:
        assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"  # it was accepted
        error = await client.recv_until(lambda m: m["type"] == "error")
        code, _reason = await client.closed()
    assert error["code"] == 4001 and "expired" in error["message"].lower()
    assert code == 4001
