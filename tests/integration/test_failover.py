"""Two runstream workers on one Redis: one leads, the other takes over when the leader is SIGKILLed.

While tickers flow and a limit order rests, the leader dies without any clean-up. Clients that were
connected before keep their connections and get tickers again within 10 s (the lease's TTL plus
the standby's poll and its reconnect to the exchange); /ws/status names the new leader, with a
larger fencing token; the resting order, crossed after the failover, fills exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import time
from decimal import Decimal

import pytest

from realtime.protocol import now_iso
from tests.integration.harness import Client
from tests.integration.topology import (
    SLOW,
    System,
    Trader,
    below,
    kill,
    leader,
    print_trade,
    redis_server,
    service_of,
    ticker_after,
    wait_for,
)

TAKEOVER_SECONDS = 10.0  # the bound, with the default WORKER_LEASE_TTL of 5 s


@pytest.fixture
def system(stack):
    _, port = redis_server(stack, "failover-redis")
    system = System(stack, "failover", f"redis://127.0.0.1:{port}/0")
    yield system
    system.stop()


async def test_a_standby_worker_takes_over_when_the_leader_is_killed(system):
    exchange = system.exchange("--trade-chance", "0", "--seed", "11")
    gateway = system.daphne()
    workers = [system.worker(exchange), system.worker(exchange)]
    first = await wait_for(lambda: leader(gateway), "no worker became the leader")
    old = service_of(first, workers)
    assert old is not None, f"the leader {first} is none of our workers"
    standby = next(w for w in workers if w is not old)
    trader = Trader(gateway.http, gateway.ws, system.user("failover-trader"))

    async with await Client.connect(f"{gateway.ws}/ws/market") as market:
        await market.subscribe({"type": "subscribe_ticker", "symbols": ["BTCUSDT"]})
        await market.subscribe({"type": "subscribe_trades", "symbols": ["BTCUSDT"]})
        await market.subscribe({"type": "subscribe_orderbook", "symbols": ["BTCUSDT"]})
        await ticker_after(market, "")
        last = (await print_trade(exchange, market, "50000.00"))["price"]
        await trader.connect()
        resting = await trader.place(symbol="BTCUSDT", side="buy", type="limit", quantity="0.01", price=below(last))
        await trader.order_reaches(resting["id"], "new")

        killed_at, since = time.monotonic(), now_iso()
        kill(old)
        resumed = await ticker_after(market, since, timeout=TAKEOVER_SECONDS)
        took = time.monotonic() - killed_at
        print(f"tickers resumed {took:.1f} s after the leader was killed")
        assert took <= TAKEOVER_SECONDS, f"tickers resumed only after {took:.1f} s"
        assert resumed["symbol"] == "BTCUSDT"
        book = await market.recv_until(lambda m: m["type"] == "orderbook", timeout=SLOW)  # books resynchronised
        assert book["bids"] and book["asks"]

        second = await wait_for(
            lambda: (record := leader(gateway)) and record["worker"] != first["worker"] and record,
            "/ws/status never named the new leader",
        )
        assert service_of(second, workers) is standby and standby.alive()
        assert second["fence"] > first["fence"]

        await print_trade(exchange, market, below(last, "0.8"))  # crosses the resting buy
        filled = await trader.order_reaches(resting["id"], "filled")
        marker = await trader.place(symbol="BTCUSDT", side="sell", type="limit", quantity="0.01", price="60000.00")
        await print_trade(exchange, market, "60000.00")
        await trader.order_reaches(marker["id"], "filled")  # later than any second fill of the resting order
        await trader.close()

    assert trader.statuses_of(resting["id"]) == ["new", "filled"]
    assert Decimal(filled["filled_quantity"]) == Decimal("0.01")
    order = await trader.order(resting["id"])
    assert order["status"] == "filled" and order["filled_quantity"] == filled["filled_quantity"]
    assert await asyncio.to_thread(system.fills_of, resting["id"]) == 1


async def test_an_orderly_stop_hands_the_lease_over_at_once(system):
    """SIGTERM releases the lease: the standby need not wait for it to expire."""
    exchange = system.exchange("--trade-chance", "0", "--seed", "12")
    gateway = system.daphne()
    workers = [system.worker(exchange, WORKER_LEASE_TTL="60"), system.worker(exchange, WORKER_LEASE_TTL="60")]
    first = await wait_for(lambda: leader(gateway), "no worker became the leader")
    old = service_of(first, workers)
    await asyncio.to_thread(old.stop)
    assert old.process.returncode == 0
    second = await wait_for(
        lambda: (record := leader(gateway)) and record["worker"] != first["worker"] and record,
        "the standby did not take over well before the 60 s lease would have expired",
        timeout=TAKEOVER_SECONDS,
    )
    assert service_of(second, workers) is not old


async def test_a_leader_that_was_cut_off_steps_down_when_it_comes_back_and_fills_nothing(system):
    """SIGSTOP: the leader neither renews nor knows it lost the lease (a long pause, a partition).

    Its lease expires, the standby takes over and fills the crossed order; when the old leader runs
    again it finds its term over and stands by, and the order has been filled exactly once.
    """
    exchange = system.exchange("--trade-chance", "0", "--seed", "13")
    gateway = system.daphne()
    workers = [system.worker(exchange), system.worker(exchange)]
    first = await wait_for(lambda: leader(gateway), "no worker became the leader")
    old = service_of(first, workers)
    trader = Trader(gateway.http, gateway.ws, system.user("paused-trader"))

    async with await Client.connect(f"{gateway.ws}/ws/market") as market:
        await market.subscribe({"type": "subscribe_trades", "symbols": ["ETHUSDT"]})
        last = (await print_trade(exchange, market, "3000.00", symbol="ETHUSDT"))["price"]
        await trader.connect()
        resting = await trader.place(symbol="ETHUSDT", side="buy", type="limit", quantity="0.1", price=below(last))
        await trader.order_reaches(resting["id"], "new")

        old.process.send_signal(signal.SIGSTOP)
        try:
            second = await wait_for(
                lambda: (record := leader(gateway)) and record["worker"] != first["worker"] and record,
                "the standby never took over from the paused leader",
            )
            await print_trade(exchange, market, below(last, "0.8"), symbol="ETHUSDT")  # crosses the resting buy
            await trader.order_reaches(resting["id"], "filled")
        finally:
            old.process.send_signal(signal.SIGCONT)
        await wait_for(lambda: "stepping down" in old.log(), "the old leader never stepped down")

        marker = await trader.place(symbol="ETHUSDT", side="sell", type="limit", quantity="0.1", price="4000.00")
        await print_trade(exchange, market, "4000.00", symbol="ETHUSDT")
        await trader.order_reaches(marker["id"], "filled")
        await trader.close()

    assert (await asyncio.to_thread(leader, gateway))["worker"] == second["worker"]
    assert trader.statuses_of(resting["id"]) == ["new", "filled"]
    assert await asyncio.to_thread(system.fills_of, resting["id"]) == 1
