"""Password guessing on /api/token/ and the admin login, against running daphne instances."""

from __future__ import annotations

import pytest
import redis

from tests.security.admin_session import AdminSession
from tests.security.web import login

LIMIT = 5  # LOGIN_FAILURE_LIMIT's default


@pytest.fixture
def forget_lockouts(security_stack):
    """Lockouts live in the shared Redis cache for 15 minutes: drop them after each test."""
    yield
    client = redis.Redis.from_url(security_stack.redis_url)
    for key in client.scan_iter("*axes-*"):
        client.delete(key)


@pytest.fixture(scope="module")
def behind_proxy(security_stack):
    """An instance behind one trusted proxy: the last X-Forwarded-For entry is the client."""
    return security_stack.daphne(None, TRUSTED_PROXY_COUNT="1")


def forwarded(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.100.{n}"}


def test_six_wrong_passwords_get_429_whatever_x_forwarded_for_says(gateway, new_user, forget_lockouts):
    username, password, _ = new_user("victim")
    statuses = [login(gateway, username, "guess-" + str(n), forwarded(n))[0] for n in range(LIMIT + 1)]

    assert statuses == [401] * LIMIT + [429]
    status, body = login(gateway, username, password, forwarded(99))  # even the right password, now
    assert status == 429 and "try again" in body["detail"], body


def test_the_lockout_is_shared_by_every_instance(gateway, second_gateway, new_user, forget_lockouts):
    username, password, _ = new_user("victim")
    for n in range(LIMIT):
        assert login(gateway, username, f"guess-{n}")[0] == 401

    assert login(second_gateway, username, password)[0] == 429


def test_one_username_is_locked_from_every_address(behind_proxy, new_user, forget_lockouts):
    username, password, _ = new_user("victim")
    for n in range(LIMIT):
        assert login(behind_proxy, username, f"guess-{n}", forwarded(n))[0] == 401

    assert login(behind_proxy, username, password, forwarded(200))[0] == 429


def test_one_address_is_locked_for_every_username(behind_proxy, new_user, forget_lockouts):
    """Password spraying: one guess for each of many users from one address."""
    victims = new_user.many("sprayed", LIMIT + 1)
    for username, _, _ in victims[:LIMIT]:
        assert login(behind_proxy, username, "Summer2026!", forwarded(7))[0] == 401

    username, password, _ = victims[LIMIT]
    assert login(behind_proxy, username, password, forwarded(7))[0] == 429
    assert login(behind_proxy, username, password, forwarded(8))[0] == 200  # another address is not


def test_a_client_supplied_address_left_of_the_proxies_is_not_believed(behind_proxy, new_user, forget_lockouts):
    """With one trusted proxy, "spoofed, real" is the client "real", whatever "spoofed" says."""
    victims = new_user.many("sprayed", LIMIT + 1)
    for n, (username, _, _) in enumerate(victims[:LIMIT]):
        assert login(behind_proxy, username, "guess", {"X-Forwarded-For": f"10.9.9.{n}, 198.51.100.50"})[0] == 401

    username, password, _ = victims[LIMIT]
    assert login(behind_proxy, username, password, {"X-Forwarded-For": "10.9.9.77, 198.51.100.50"})[0] == 429


def test_a_username_spelled_as_an_address_does_not_lock_that_address(behind_proxy, new_user, forget_lockouts):
    for n in range(LIMIT + 1):
        login(behind_proxy, "198.51.100.60", f"guess-{n}", forwarded(n + 100))
    username, password, _ = new_user("bystander")

    assert login(behind_proxy, username, password, forwarded(60))[0] == 200


def test_the_admin_login_is_locked_after_the_same_failures(gateway, new_user, forget_lockouts):
    username, password, _ = new_user("staffer", is_staff=True)
    admin = AdminSession(gateway.http)
    for n in range(LIMIT - 1):
        status, html = admin.login(username, f"guess-{n}")
        assert status == 200 and "Please enter the correct username and password" in html

    status, html = admin.login(username, "guess-last")  # the failure that reaches the limit
    assert status == 429 and "too many login attempts" in html.lower(), html[:300]
    status, html = admin.login(username, password)
    assert status == 429


def test_the_token_endpoints_have_a_per_address_rate(security_stack, new_user):
    """Every login costs a password hash: an address gets LOGIN_RATE_PER_MINUTE of them."""
    gateway = security_stack.daphne(None, LOGIN_RATE_PER_MINUTE="3", TRUSTED_PROXY_COUNT="1")
    username, password, _ = new_user("busy")
    statuses = [login(gateway, username, password, forwarded(230))[0] for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
