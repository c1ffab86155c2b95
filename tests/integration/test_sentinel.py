"""REDIS_URL naming Sentinels: when the Redis master dies, the system follows the failover by itself.

Real processes: a master, a replica and three Sentinels (quorum 2) on free ports, each in a folder
of its own; daphne and the worker reach Redis only through
`redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster/0`. The master is SIGKILLed;
within 30 s tickers reach market clients and trading events reach their user again, and no
process of ours was restarted. (A client whose connection daphne had to drop reconnects, as every
client does; the same process serves it.)
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
import redis
import websockets

from realtime.protocol import now_iso
from tests.integration import harness
from tests.integration.harness import Client, Service
from tests.integration.topology import (
    System,
    Trader,
    kill,
    leader,
    print_trade,
    redis_sentinel,
    redis_server,
    ticker_after,
    wait_for,
)

RECOVERY_SECONDS = 30.0


@dataclass
class Sentinels:
    url: str
    master: Service
    replica_port: int
    ports: list[int]


@pytest.fixture
def sentinels(stack):
    master, master_port = redis_server(stack, "sentinel-master")
    replica, replica_port = redis_server(stack, "sentinel-replica", "--replicaof", "127.0.0.1", str(master_port))
    watchers = [redis_sentinel(stack, f"sentinel-{n}", master_port) for n in (1, 2, 3)]
    ports = [port for _, port in watchers]

    def ready() -> bool:
        link = redis.Redis(port=replica_port).info("replication").get("master_link_status") == "up"
        known = all(len(redis.Redis(port=p).sentinel_slaves("mymaster")) == 1 for p in ports)
        others = all(redis.Redis(port=p).sentinel_master("mymaster")["num-other-sentinels"] == 2 for p in ports)
        return link and known and others

    harness.wait_until(ready, master, "the replica and the Sentinels never found each other", timeout=60)
    url = "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/mymaster/0"
    yield Sentinels(url, master, replica_port, ports)
    for service, _ in watchers:
        service.stop()
    replica.stop()
    master.stop()


def master_port_now(sentinel_ports: list[int]) -> int:
    return int(redis.Redis(port=sentinel_ports[0]).sentinel_get_master_addr_by_name("mymaster")[1])


async def market_client(gateway) -> Client:
    client = await Client.connect(f"{gateway.ws}/ws/market")
    await client.subscribe({"type": "subscribe_ticker", "symbols": ["BTCUSDT"]})
    await client.subscribe({"type": "subscribe_trades", "symbols": ["BTCUSDT", "ETHUSDT"]})
    return client


async def fresh_ticker(gateway, client: Client, since: str, deadline: float) -> tuple[Client, dict]:
    """A ticker after `since` on the same connection or, if daphne dropped it, on a new one."""
    while True:
        try:
            return client, await ticker_after(client, since, timeout=max(0.1, deadline - time.monotonic()))
        except websockets.ConnectionClosed:
            await client.close()
            client = await market_client(gateway)


async def trading_event(exchange, trader: Trader, market: Client, deadline: float) -> dict:
    """A market order placed now and its fill on the trader's socket, reconnecting whatever dropped."""
    while True:
        try:
            if trader.client is None:
                await trader.connect()
            await print_trade(exchange, market, "2500.00", symbol="ETHUSDT")
            order = await trader.place(symbol="ETHUSDT", side="buy", type="market", quantity="0.1")
            return await trader.order_reaches(order["id"], "filled", timeout=max(0.1, deadline - time.monotonic()))
        except (websockets.ConnectionClosed, OSError, AssertionError):
            if time.monotonic() > deadline:
                raise
            await trader.close()
            trader.client = None
            await asyncio.sleep(0.5)


async def test_the_system_follows_a_sentinel_failover_without_restarts(stack, sentinels):
    system = System(stack, "sentinel", sentinels.url)
    try:
        exchange = system.exchange("--trade-chance", "0", "--seed", "31")
        gateway = system.daphne()
        worker = system.worker(exchange)
        first = await wait_for(lambda: leader(gateway), "the worker never led through Sentinel")
        pids = {s.name: s.process.pid for s in (gateway.service, worker)}

        market = await market_client(gateway)
        await ticker_after(market, "")
        trader = await Trader(gateway.http, gateway.ws, system.user("sentinel-trader")).connect()
        await trading_event(exchange, trader, market, time.monotonic() + 30)

        since, killed_at = now_iso(), time.monotonic()
        kill(sentinels.master)
        deadline = killed_at + RECOVERY_SECONDS
        market, ticker = await fresh_ticker(gateway, market, since, deadline)
        filled = await trading_event(exchange, trader, market, deadline)
        took = time.monotonic() - killed_at
        print(f"recovered {took:.1f} s after the master was killed")

        assert took <= RECOVERY_SECONDS, f"recovered only after {took:.1f} s"
        assert ticker["symbol"] == "BTCUSDT" and filled["status"] == "filled"
        assert master_port_now(sentinels.ports) == sentinels.replica_port, "the Sentinels did not promote the replica"
        assert gateway.service.alive() and worker.alive()
        assert {s.name: s.process.pid for s in (gateway.service, worker)} == pids, "a process was restarted"
        record = await wait_for(lambda: leader(gateway), "no leader after the failover")  # the cache followed
        assert record["worker"] == first["worker"]  # the same worker process leads again: its lease followed
        await wait_for(  # the registry followed: both live connections are counted on the new master
            lambda: gateway.status()["active_connections"] >= 2, "the registry lost the live connections"
        )
        await market.close()
        await trader.close()
    finally:
        system.stop()
