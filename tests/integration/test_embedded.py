"""`manage.py serve` without REDIS_URL: one process serves HTTP and WebSockets and runs the worker.

Binance is pointed at a closed port, so the server must say so loudly and fall back to the simulator.
"""

from __future__ import annotations

import pytest

from tests.integration import harness
from tests.integration.harness import Client, Gateway


@pytest.fixture(scope="module")
def embedded(stack):
    closed = harness.free_port()
    port = harness.free_port()
    # A system of its own: its worker seeds the Symbol table with just these two symbols.
    database = f"sqlite:///{stack.workdir / 'embedded.sqlite3'}"
    stack.manage("migrate", "--no-input", DATABASE_URL=database)
    env = stack.env(
        DATABASE_URL=database,
        BINANCE_REST_URL=f"http://127.0.0.1:{closed}",
        BINANCE_WS_URL=f"ws://127.0.0.1:{closed}",
        MARKET_SOURCE="binance",
        MARKET_SYMBOLS="BTCUSDT,ETHUSDT",
    )
    env.pop("REDIS_URL")
    service = harness.Service(
        "embedded", [harness.PYTHON, "manage.py", "serve", "--port", str(port)], env, stack.workdir / "embedded.log"
    ).start()
    stack.services.append(service)
    gateway = Gateway(service, port)
    gateway.wait_ready()
    yield gateway
    service.stop()


async def test_embedded_server_falls_back_to_the_simulator_and_streams(embedded):
    async with await Client.connect(f"{embedded.ws}/ws/market") as client:
        await client.request({"type": "subscribe_ticker", "symbols": ["ETHUSDT"]})
        ticker = await client.recv_until(lambda m: m["type"] == "ticker", timeout=30)
    status = embedded.status()
    assert ticker["symbol"] == "ETHUSDT"
    assert status["channel_layer"] == "in-memory"
    assert status["market_data"]["simulated"] is True
    assert "SIMULATOR" in embedded.service.log()


async def test_embedded_server_stops_cleanly_on_sigterm(stack, embedded):
    assert embedded.service.stop() == 0
    assert "market-data worker stopped" in embedded.service.log()
