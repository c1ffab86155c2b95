"""nginx in front of two daphne instances, with the site file from deploy/ rendered for free ports.

Market and trading sockets work through nginx, connections land on both instances (no sticky
sessions), static files come from nginx itself, and each daphne sees the client's own address
(the one nginx puts in X-Forwarded-For), never one the client made up.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.files import nginx_binary
from tests.integration import harness
from tests.integration.conftest import Exchange
from tests.integration.harness import Client
from tests.integration.topology import (
    SLOW,
    Nginx,
    System,
    Trader,
    print_trade,
    redis_server,
    start_nginx,
    ticker_after,
    wait_for,
)

CLIENT_ADDRESS = "127.0.0.2"  # a loopback address of its own, so nginx's 127.0.0.1 is told apart
FORGED = "203.0.113.66"


@dataclass
class Topology:
    system: System
    exchange: Exchange
    gateways: list[harness.Gateway]
    nginx: Nginx
    access_logs: Path


@pytest.fixture(scope="module")
def topology(stack, tmp_path_factory):
    if nginx_binary() is None:
        pytest.fail("nginx is not installed: install Debian's `nginx` package (.ci/run does)")
    _, port = redis_server(stack, "nginx-redis")
    system = System(stack, "nginx", f"redis://127.0.0.1:{port}/0")
    logs = tmp_path_factory.mktemp("daphne-access")
    static = tmp_path_factory.mktemp("static")
    (static / "probe.txt").write_text("served by nginx\n")
    try:
        exchange = system.exchange("--trade-chance", "0", "--seed", "21")
        gateways = [system.daphne("--proxy-headers", "--access-log", str(logs / f"daphne-{n}.log")) for n in (1, 2)]
        worker = system.worker(exchange)
        harness.wait_until(lambda: gateways[0].status()["market_data"].get("connected"), worker, "worker", SLOW)
        nginx = start_nginx(stack, [g.port for g in gateways], static)
        system.own(nginx.service)
        yield Topology(system, exchange, gateways, nginx, logs)
    finally:
        system.stop()


def active_connections(gateway: harness.Gateway, endpoint: str) -> float:
    pattern = rf'^ws_active_connections\{{endpoint="{endpoint}"\}} (\S+)$'
    found = re.search(pattern, gateway.metrics(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_market_sockets_through_nginx_land_on_both_instances(topology):
    clients = [await Client.connect(f"{topology.nginx.ws}/ws/market") for _ in range(4)]
    try:
        for client in clients:
            await client.subscribe({"type": "subscribe_ticker", "symbols": ["BTCUSDT"]})
        for client in clients:
            ticker = await ticker_after(client, "")
            assert ticker["symbol"] == "BTCUSDT"
        per_instance = [await asyncio.to_thread(active_connections, g, "market") for g in topology.gateways]
        assert all(count >= 1 for count in per_instance), per_instance
        assert sum(per_instance) >= len(clients)
    finally:
        for client in clients:
            await client.close()


async def test_trading_through_nginx_rest_and_socket(topology):
    trader = await Trader(topology.nginx.http, topology.nginx.ws, topology.system.user("nginx-trader")).connect()
    async with await Client.connect(f"{topology.nginx.ws}/ws/market") as market:
        await market.subscribe({"type": "subscribe_trades", "symbols": ["ETHUSDT"]})
        await print_trade(topology.exchange, market, "2000.00", symbol="ETHUSDT")
        order = await trader.place(symbol="ETHUSDT", side="buy", type="market", quantity="0.1")
        filled = await trader.order_reaches(order["id"], "filled")
    await trader.close()
    assert filled["symbol"] == "ETHUSDT"
    status = await asyncio.to_thread(harness.http_json, "GET", f"{topology.nginx.http}/ws/status")
    assert status[0] == 200 and status[1]["channel_layer"] == "redis"


async def test_daphne_sees_the_clients_address_not_a_forged_one(topology):
    forged = {"X-Forwarded-For": FORGED}
    url = f"{topology.nginx.ws}/ws/market"
    clients = [await Client.connect(url, local_addr=(CLIENT_ADDRESS, 0), additional_headers=forged) for _ in range(2)]
    for client in clients:
        await client.subscribe({"type": "subscribe_ticker", "symbols": ["BTCUSDT"]})
        await client.close()

    def logged() -> str:
        return "".join(path.read_text() for path in topology.access_logs.glob("*.log"))

    def connects_from(address: str, text: str) -> int:
        return sum(line.startswith(f"{address}:") and "WSCONNECT /ws/market" in line for line in text.splitlines())

    await wait_for(lambda: connects_from(CLIENT_ADDRESS, logged()) >= 2, "daphne never logged the client's address")
    assert FORGED not in logged()
    for path in topology.access_logs.glob("*.log"):  # round robin: each instance had one of the two
        assert connects_from(CLIENT_ADDRESS, path.read_text()) >= 1, path.name


def test_static_files_come_from_nginx(topology):
    with urllib.request.urlopen(f"{topology.nginx.http}/static/probe.txt", timeout=10) as response:
        assert response.read() == b"served by nginx\n"
        assert "max-age=3600" in response.headers["Cache-Control"]


def test_metrics_are_not_exposed_through_nginx(topology):
    try:
        urllib.request.urlopen(f"{topology.nginx.http}/metrics", timeout=10)
        raise AssertionError("/metrics answered through nginx")
    except urllib.error.HTTPError as error:
        assert error.code == 404
    assert "ws_active_connections" in topology.gateways[0].metrics()  # scraped on the instance itself


def test_an_oversized_request_body_is_refused_by_nginx(topology):
    """Refused on its Content-Length alone, before any of it reaches daphne."""
    connection = http.client.HTTPConnection("127.0.0.1", topology.nginx.port, timeout=10)
    try:
        connection.putrequest("POST", "/api/orders/")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(2 * 1024 * 1024))
        connection.endheaders()
        assert connection.getresponse().status == 413
    finally:
        connection.close()
