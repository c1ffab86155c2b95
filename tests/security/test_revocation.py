"""Revocation over the network: the admin deactivates, deletes or re-passwords a user; two instances."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from tests.integration.harness import Client
from tests.security.admin_session import AdminSession
from tests.security.web import get, login, post
from tests.support import TIMEOUT

REVOCATION_DEADLINE = 5.0  # seconds, from the admin's click to the close on every instance


def admin_as_root(gateway, security_stack) -> AdminSession:
    admin = AdminSession(gateway.http)
    status, html = admin.login("root", "root-password-1")
    assert status == 200 and "Log out" in html, html[:500]
    return admin


@pytest.fixture
async def connect():
    """Client.connect, with every connection closed when the test ends, whatever happened."""
    opened: list[Client] = []

    async def open_one(url: str) -> Client:
        opened.append(await Client.connect(url))
        return opened[-1]

    yield open_one
    for client in opened:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), TIMEOUT)


async def signed_in_connections(connect, gateways, access: str) -> list[Client]:
    """One /ws/trading connection per instance, each proven to deliver: one subscribed to orders,
    the others only answering a ping (revocation must reach connections that subscribed nothing)."""
    clients = []
    for n, gateway in enumerate(gateways):
        client = await connect(f"{gateway.ws}/ws/trading?token={access}")
        if n == 0:
            await client.subscribe({"type": "subscribe", "channels": ["orders"]})
        else:
            assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"
        clients.append(client)
    return clients


async def closed_with_4002(client: Client) -> float:
    """Wait for the error frame and the close, both 4002; returns when the close arrived."""
    error = await client.recv_until(lambda m: m["type"] == "error", timeout=TIMEOUT)
    code, _reason = await client.closed()
    assert error["code"] == 4002 and code == 4002, (error, code)
    return time.monotonic()


async def expect_closed_on_every_instance(clients: list[Client], started: float) -> None:
    closed_at = await asyncio.gather(*(closed_with_4002(c) for c in clients))
    assert max(closed_at) - started < REVOCATION_DEADLINE, [t - started for t in closed_at]


async def test_a_user_deactivated_in_the_admin_is_closed_with_4002_on_two_instances(
    gateway, second_gateway, security_stack, new_user, connect
):
    username, password, user_id = new_user("trader")
    access = login(gateway, username, password)[1]["access"]
    clients = await signed_in_connections(connect, [gateway, second_gateway], access)
    admin = await asyncio.to_thread(admin_as_root, gateway, security_stack)
    path = f"/admin/auth/user/{user_id}/change/"
    fields = [(k, v) for k, v in await asyncio.to_thread(admin.form, path, "user_form") if k != "is_active"]

    started = time.monotonic()
    status, html = await asyncio.to_thread(admin.submit, path, fields, _save="Save")
    assert status == 200 and "errornote" not in html, html[:2000]
    await expect_closed_on_every_instance(clients, started)

    refused = await connect(f"{second_gateway.ws}/ws/trading?token={access}")
    assert (await refused.recv())["code"] == 4002
    assert get(f"{gateway.http}/api/portfolio/", token=access)[0] == 401


async def test_a_password_change_closes_connections_and_refuses_old_tokens(
    gateway, second_gateway, security_stack, new_user, connect
):
    username, password, user_id = new_user("trader")
    tokens = login(gateway, username, password)[1]
    clients = await signed_in_connections(connect, [gateway, second_gateway], tokens["access"])
    admin = await asyncio.to_thread(admin_as_root, gateway, security_stack)
    path = f"/admin/auth/user/{user_id}/password/"
    fields = [(k, v) for k, v in await asyncio.to_thread(admin.form, path) if k not in {"password1", "password2"}]
    new_password = "a-brand-new-password-42"

    started = time.monotonic()
    fields += [("password1", new_password), ("password2", new_password)]
    status, html = await asyncio.to_thread(admin.submit, path, fields)
    assert status == 200 and "errornote" not in html, html[:2000]
    await expect_closed_on_every_instance(clients, started)

    status, body = post(f"{gateway.http}/api/token/refresh/", {"refresh": tokens["refresh"]})
    assert status == 401, body
    assert get(f"{second_gateway.http}/api/portfolio/", token=tokens["access"])[0] == 401
    refused = await connect(f"{gateway.ws}/ws/trading?token={tokens['access']}")
    error = await refused.recv()
    assert error["code"] == 4002 and "password" in error["message"], error
    # The new password works, and so do the tokens it gives.
    status, fresh = login(second_gateway, username, new_password)
    assert status == 200, fresh
    assert get(f"{gateway.http}/api/portfolio/", token=fresh["access"])[0] == 200
    assert post(f"{gateway.http}/api/token/refresh/", {"refresh": fresh["refresh"]})[0] == 200


def test_a_refresh_token_works_once(gateway, new_user):
    """Rotation: each refresh returns a new refresh token and blacklists the one it used."""
    username, password, _ = new_user("trader")
    first = login(gateway, username, password)[1]["refresh"]

    status, rotated = post(f"{gateway.http}/api/token/refresh/", {"refresh": first})
    assert status == 200 and rotated["refresh"] != first
    assert post(f"{gateway.http}/api/token/refresh/", {"refresh": first})[0] == 401
    assert post(f"{gateway.http}/api/token/refresh/", {"refresh": rotated["refresh"]})[0] == 200


async def test_a_user_deleted_in_the_admin_is_closed_with_4002_and_its_tokens_refused(
    gateway, second_gateway, security_stack, new_user, connect
):
    username, password, user_id = new_user("trader")
    tokens = login(gateway, username, password)[1]
    clients = await signed_in_connections(connect, [second_gateway, gateway], tokens["access"])
    admin = await asyncio.to_thread(admin_as_root, gateway, security_stack)

    started = time.monotonic()
    status, html = await asyncio.to_thread(admin.submit, f"/admin/auth/user/{user_id}/delete/", [("post", "yes")])
    assert status == 200 and "was deleted successfully" in html, html[:2000]
    await expect_closed_on_every_instance(clients, started)

    assert post(f"{gateway.http}/api/token/refresh/", {"refresh": tokens["refresh"]})[0] == 401
