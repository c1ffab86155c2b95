"""tools/websocket_test_client.py, run as an operator would: against the live system, and against a
server that is down."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import free_port
from tests.support import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tools" / "websocket_test_client.py"
RUN_TIMEOUT = 6 * TIMEOUT  # the whole CLI run; each of its own steps has a shorter deadline


def run_client(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CLIENT), *args], cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )


def load_client_module():
    """The CLI as a module (tools/ is scripts, not a package), for its pure helpers."""
    if "websocket_test_client" not in sys.modules:
        spec = importlib.util.spec_from_file_location("websocket_test_client", CLIENT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules["websocket_test_client"]


# --- against the live system ---------------------------------------------------------------------


def test_health_mode_passes_and_prints_the_status(live_system):
    result = run_client("--test", "health", "--url", live_system.http)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS health" in result.stdout
    assert '"status": "active"' in result.stdout
    assert "(simulated)" in result.stdout
    assert "1 passed, 0 failed" in result.stdout


def test_market_mode_passes_and_prints_the_tickers_it_receives(live_system):
    result = run_client("--test", "market", "--url", live_system.http)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<- subscribed" in result.stdout
    assert "<- ticker" in result.stdout
    assert "symbol=BTCUSDT" in result.stdout or "symbol=ETHUSDT" in result.stdout
    assert "<- pong" in result.stdout
    assert "PASS market" in result.stdout


def test_trading_mode_passes_with_a_token(live_system):
    result = run_client("--test", "trading", "--token", live_system.token(), "--url", live_system.http)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "channels=" in result.stdout
    assert "<- portfolio" in result.stdout  # the snapshot after subscribing
    assert "<- pong" in result.stdout
    assert "PASS trading" in result.stdout


def test_all_mode_passes_with_a_token_and_accepts_a_ws_url(live_system):
    ws_url = live_system.http.replace("http://", "ws://")
    result = run_client("--test", "all", "--token", live_system.token(), "--url", ws_url)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("health", "market", "trading"):
        assert f"PASS {name}" in result.stdout
    assert "3 passed, 0 failed" in result.stdout


def test_the_token_is_never_printed(live_system):
    token = live_system.token()
    result = run_client("--test", "trading", "--token", token, "--url", live_system.http)
    assert token not in result.stdout + result.stderr


def test_trading_mode_fails_when_the_token_is_refused(live_system):
    result = run_client("--test", "trading", "--token", "not-a-jwt", "--url", live_system.http)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL trading" in result.stdout
    assert "4001" in result.stdout


def test_all_mode_without_a_token_skips_trading(live_system):
    result = run_client("--test", "all", "--url", live_system.http)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SKIP trading" in result.stdout
    assert "2 passed, 0 failed" in result.stdout


def test_recovery_mode_gets_exactly_the_missed_order_updates(live_system):
    result = run_client(
        "--test", "recovery", "--orders", "10", "--token", live_system.token(), "--url", live_system.http
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS recovery" in result.stdout
    assert "missed order updates for 10 orders recovered in order" in result.stdout


# --- against a server that is down ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["health", "market", "trading", "recovery", "all"])
def test_every_mode_fails_against_a_server_that_is_down(mode):
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_client("--test", mode, "--token", "any-token", "--url", down)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAIL {mode if mode != 'all' else 'health'}" in result.stdout
    assert " 0 passed" in result.stdout or "\n0 passed" in result.stdout


def test_trading_mode_without_a_token_is_a_usage_error():
    result = run_client("--test", "trading")
    assert result.returncode == 2
    assert "--token" in result.stderr


def test_recovery_mode_without_a_token_is_a_usage_error():
    result = run_client("--test", "recovery")
    assert result.returncode == 2
    assert "--token" in result.stderr


@pytest.mark.parametrize("count", ["0", "51"])
def test_recovery_mode_with_an_impossible_number_of_orders_is_a_usage_error(count):
    result = run_client("--test", "recovery", "--token", "t", "--orders", count)
    assert result.returncode == 2
    assert "--orders" in result.stderr


def test_an_unknown_mode_is_a_usage_error():
    result = run_client("--test", "everything")
    assert result.returncode == 2


# --- the URL forms an operator may give ----------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "http", "ws"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000", "ws://127.0.0.1:8000"),
        ("https://trading.example.com/", "https://trading.example.com", "wss://trading.example.com"),
        ("wss://trading.example.com/gw", "https://trading.example.com/gw", "wss://trading.example.com/gw"),
        ("localhost:8001", "http://localhost:8001", "ws://localhost:8001"),
    ],
)
def test_urls_are_understood_in_every_form(given, http, ws):
    endpoints = load_client_module().endpoints(given)
    assert (endpoints.http, endpoints.ws) == (http, ws)


def test_messages_are_printed_one_readable_line_each():
    describe = load_client_module().describe
    line = describe(
        {
            "type": "orderbook",
            "symbol": "BTCUSDT",
            "bids": [["49950.00", "1.5"]],
            "asks": [["50050.00", "1.2"], ["50060.00", "0.8"]],
            "timestamp": "2024-01-01T00:00:00.000Z",
        }
    )
    assert line == (
        "  <- orderbook      BTCUSDT best bid 1.5 @ 49950.00, best ask 1.2 @ 50050.00 (1/2 levels)"
        "  [2024-01-01T00:00:00.000Z]"
    )


# --- frames --------------------------------------------------------------------------------------


def test_a_batched_frame_is_taken_as_its_messages_in_order():
    decode = load_client_module().decode
    frame = '[{"type":"order_update","seq":1},{"type":"order_update","seq":2}]'

    assert [m["seq"] for m in decode(frame)] == [1, 2]
    assert decode('{"type":"pong"}') == [{"type": "pong"}]


@pytest.mark.parametrize("frame", ["[]", '[{"type":"pong"}, 3]', '{"no":"type"}', "not json"])
def test_a_frame_that_is_not_messages_fails_the_check(frame):
    module = load_client_module()
    with pytest.raises(module.CheckFailed):
        module.decode(frame)


def test_batched_frames_are_asked_for():
    with_batch = load_client_module().with_batch
    assert with_batch("ws://h/ws/market") == "ws://h/ws/market?batch=1"
    assert with_batch("ws://h/ws/trading?token=t") == "ws://h/ws/trading?token=t&batch=1"
