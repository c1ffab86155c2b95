"""Oversized and deeply nested JSON bodies against a running instance: a clear 4xx, no 500, no spike."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.web import login, post

FIFTY_MB = 50 * 1024 * 1024


def peak_memory_kib(gateway) -> int:
    """The daphne process's peak resident memory so far (VmHWM)."""
    status = Path(f"/proc/{gateway.service.process.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


@pytest.fixture(scope="module")
def access(gateway, security_stack):
    from tests.integration.harness import make_user_script

    security_stack.manage("shell", "-c", make_user_script("bodies", "bodies-password-1"))
    return login(gateway, "bodies", "bodies-password-1")[1]["access"]


@pytest.mark.parametrize("path", ["/api/token/", "/api/orders/"])
def test_a_50_mb_json_body_is_refused_with_413_and_never_parsed(gateway, access, path):
    body = b'{"symbol": "' + b"A" * FIFTY_MB + b'"}'
    before = peak_memory_kib(gateway)

    status, reply = post(f"{gateway.http}{path}", body, token=access if "orders" in path else None)

    assert status == 413, reply
    assert "too large" in reply["detail"]
    # daphne queues a whole request body for the application before it runs (README "Security":
    # the proxy in front bounds bodies); past that one copy, nothing may be held or parsed.
    assert peak_memory_kib(gateway) - before < (FIFTY_MB + 20 * 1024 * 1024) // 1024, "the body was copied"


@pytest.mark.parametrize("path", ["/api/token/", "/api/orders/", "/api/bots/"])
def test_json_nested_100000_deep_is_refused_with_400(gateway, access, path):
    status, reply = post(f"{gateway.http}{path}", b"[" * 100_000, token=access if "token" not in path else None)

    assert status == 400, reply
    assert "nested deeper" in reply["detail"]


def test_bot_params_nested_past_the_limit_are_refused_with_400(gateway, access):
    params: dict = {"quote_amount": "100"}
    for _ in range(40):
        params = {"nested": params}
    body = {"name": "deep", "symbol": "BTCUSDT", "params": params}

    status, reply = post(f"{gateway.http}/api/bots/", body, token=access)

    assert status == 400 and "nested deeper" in reply["detail"], reply


def test_an_ordinary_body_still_parses(gateway, access):
    """The same endpoint answers a normal request normally: the refusals above are about size and depth."""
    status, reply = post(f"{gateway.http}/api/orders/", {"symbol": "NOPEUSDT", "side": "buy"}, token=access)

    assert status == 400 and "detail" not in reply, reply  # field errors, from the serializer
