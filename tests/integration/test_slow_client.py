"""Clients that stop reading: the server's memory stays bounded, prices conflate, trading events close.

Daphne buffers every send in the transport, so without the outbox and the backlog probe a client
that stops reading makes the server's memory grow by everything published to it.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket

import pytest
import websockets
from asgiref.sync import sync_to_async

from realtime import protocol
from tests import messages
from tests.integration.harness import Client, status_when
from tests.support import TIMEOUT, access_token

# How long the client stays silent while we publish; CI keeps it short, `SLOW_CLIENT_SECONDS=180` for minutes.
SILENT_SECONDS = float(os.environ.get("SLOW_CLIENT_SECONDS", "20"))
PAD = "x" * 2000  # makes every message ~2 KB so megabytes pile up quickly


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+) kB", status.read()).group(1)) * 1024


def metric(gateway, name: str) -> float:
    text = gateway.metrics()
    found = re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    return sum(float(v) for v in found)


async def silent_client(url: str) -> websockets.ClientConnection:
    """A client whose kernel receive buffer is tiny and which never calls recv()."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.split("//")[1].split("/")[0].split(":")
    sock.connect((host, int(port)))
    return await websockets.connect(url, sock=sock, max_queue=1, max_size=2**22, open_timeout=TIMEOUT)


async def publish_alerts(publish, user: int, count: int) -> None:
    """`count` ~2 KB risk alerts to one user, numbered by their current_value."""
    for seq in range(count):
        await sync_to_async(publish.publish_risk_alert)(
            user,
            alert_type="position_limit_exceeded",
            severity="high",
            message=PAD,
            limit_value="1",
            current_value=str(seq),
        )


def ticker(seq: int) -> dict:
    """A ~2 KB ticker (its volume padded with zeros, still a valid amount), told apart by its price."""
    return messages.ticker(price=price_of(seq), volume="1." + "0" * len(PAD), timestamp=protocol.now_iso())


def price_of(seq: int) -> str:
    return f"{50000 + seq}.00"


@pytest.fixture(scope="module")
def slow_gateway(stack):
    # Pings disabled so the silent client is not dropped as dead before the test is over.
    return stack.daphne(None, "--ping-interval", "3600", "--ping-timeout", "3600")


@pytest.mark.slow
async def test_a_client_that_stops_reading_prices_keeps_server_memory_bounded(slow_gateway, redis_publish):
    url = f"{slow_gateway.ws}/ws/market"
    reader = await Client.connect(url)
    await reader.subscribe({"type": "subscribe_ticker", "symbols": ["BTCUSDT"]})
    silent = await silent_client(url)
    await silent.send('{"type": "subscribe_ticker", "symbols": ["BTCUSDT"]}')
    pid = slow_gateway.service.process.pid
    await redis_publish.apublish_market(ticker(0))
    await reader.recv_until(lambda m: m["type"] == "ticker" and m.get("price") == price_of(0))  # the flow works
    baseline = rss_bytes(pid)
    peak, seq, published = baseline, 0, 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SILENT_SECONDS
    while loop.time() < deadline:
        for _ in range(200):
            seq += 1
            await redis_publish.apublish_market(ticker(seq))
            published += 2100
        await reader.recv_until(lambda m, s=seq: m["type"] == "ticker" and m.get("price") == price_of(s))  # keep pace
        peak = max(peak, rss_bytes(pid))
    conflations = metric(slow_gateway, "ws_outbox_conflations_total")
    # The silent client now reads: what it gets ends with the newest price, none lost at the end.
    last = None
    while last is None or last.get("price") != price_of(seq):
        last = protocol_loads(await asyncio.wait_for(silent.recv(), TIMEOUT))
    await silent.close()
    await reader.close()
    growth = peak - baseline
    print(f"published {published / 1e6:.0f} MB; daphne RSS grew {growth / 1e6:.1f} MB; conflations {conflations:.0f}")
    assert published > 40e6
    assert growth < 20e6, f"server memory grew by {growth / 1e6:.1f} MB"
    assert conflations > 0


@pytest.mark.slow
async def test_a_client_that_stops_reading_trading_events_is_closed_not_dropped(slow_gateway, stack, redis_publish):

    user = stack.users["bob"]
    url = f"{slow_gateway.ws}/ws/trading?token={access_token(user)}"
    silent = await silent_client(url)
    await silent.send('{"type": "subscribe", "channels": ["risk_alerts"]}')
    watcher = await Client.connect(url)
    await watcher.subscribe({"type": "subscribe", "channels": ["risk_alerts"]})
    closes_before = metric(slow_gateway, "ws_slow_consumer_closes_total")
    pid = slow_gateway.service.process.pid
    baseline = rss_bytes(pid)

    async def collect() -> list[str]:
        values = []
        while len(values) < 3000:
            alert = await watcher.recv_until(lambda m: m["type"] == "risk_alert")
            values.append(alert["current_value"])
        return values

    collecting = asyncio.create_task(collect())
    await publish_alerts(redis_publish, user, 3000)
    # The reading connection of the same user got everything, in order.
    assert await asyncio.wait_for(collecting, TIMEOUT * 3) == [str(seq) for seq in range(3000)]
    growth = rss_bytes(pid) - baseline
    assert metric(slow_gateway, "ws_slow_consumer_closes_total") == closes_before + 1
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(silent.recv(), TIMEOUT)
    await watcher.close()
    assert growth < 20e6, f"server memory grew by {growth / 1e6:.1f} MB"


def protocol_loads(text: str) -> dict:
    import orjson

    return orjson.loads(text)


@pytest.fixture(scope="module")
def quick_ping_gateway(stack):
    return stack.daphne(None, "--ping-interval", "1", "--ping-timeout", "2")


async def test_a_dead_peer_is_detected_by_ping_timeout_and_forgotten(quick_ping_gateway, stack, redis_publish):

    user = stack.users["erin"]
    staff = access_token(stack.users["staff"])
    url = f"{quick_ping_gateway.ws}/ws/trading?token={access_token(user)}"
    silent = await silent_client(url)
    await silent.send('{"type": "subscribe", "channels": ["risk_alerts"]}')
    # Fill its buffers so it cannot even see the server's pings: to the server it is dead.
    await publish_alerts(redis_publish, user, 200)
    key = f"user_{user}"
    await status_when(quick_ping_gateway, staff, lambda s: s["user_connections"].get(key) == 1)
    await status_when(quick_ping_gateway, staff, lambda s: not s["user_connections"].get(key))  # forgotten
    silent.transport.abort()


async def test_metrics_expose_the_gateway_figures(gateway):
    async with await Client.connect(f"{gateway.ws}/ws/market") as client:
        await client.subscribe({"type": "subscribe_ticker", "symbols": ["ETHUSDT"]})
        text = await asyncio.to_thread(gateway.metrics)
    for name in (
        "ws_active_connections",
        "ws_messages_in_total",
        "ws_messages_out_total",
        "ws_subscriptions",
        "ws_connection_duration_seconds_bucket",
        "ws_outbox_drops_total",
        "ws_outbox_conflations_total",
        "ws_errors_total",
    ):
        assert name in text, name
    assert 'ws_subscriptions{channel="ticker",symbol="ETHUSDT"} 1.0' in text
