"""What the history costs on the publishing path: trading events and market trades, with and without it.

    .venv/bin/python bench/history_cost.py [--events 5000] [--repeat 3] [--redis-db 11]

Each round publishes the same events two ways, one after the other, in one process against the
local Redis (the benchmark database, locked like the test suites' databases, flushed before each
round):
  before   what publishing did before the history: encode once, one group_send (the layer event
           carries the text)
  history  realtime.publish as it is: the history's Lua script (INCR + XADD MAXLEN + EXPIRE), then
           the same group_send with the text carrying `seq`
for trading events (core layer, one consumer channel in the user's group, drained as a consumer
would) and for market trades (pub/sub layer). Figures per published event: wall time of one
publish awaited after the other (latency), this process's CPU, and the Redis server's CPU
(`INFO cpu`, the whole server: run it on a quiet machine). Ratios are history / before, medians over
rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup(db: int) -> None:
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{db}"
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-history-cost-not-a-secret")
    os.environ["DJANGO_SETTINGS_MODULE"] = "tradingsite.settings"
    import django

    django.setup()


def redis_cpu(client) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def order_update(n: int) -> dict:
    from realtime import protocol

    return protocol.order_update(
        order_id=n,
        symbol="BTCUSDT",
        side="buy",
        status="filled",
        filled_quantity="0.01",
        remaining_quantity="0",
        average_price="50000.12",
        order_type="market",
        quantity="0.01",
        price=None,
        fee="0.5",
    )


def trade(n: int) -> dict:
    from realtime import protocol

    return protocol.trade(
        symbol="BENCHHUSDT", price="50000.01", quantity="0.001", side="buy", trade_id=n, timestamp=protocol.now_iso()
    )


async def before_user(user_id: int, message: dict) -> None:
    from channels.layers import get_channel_layer

    from realtime import groups, protocol

    event = protocol.user_event(message)
    await get_channel_layer(groups.TRADING_LAYER).group_send(groups.user(user_id, "orders"), event)


async def before_trade(message: dict) -> None:
    from channels.layers import get_channel_layer

    from realtime import groups, protocol

    event = protocol.market_event(message, conflate=False)
    await get_channel_layer(groups.MARKET_LAYER).group_send(groups.market("trades", message["symbol"]), event)


async def measure(publish, build, events: int, redis_client) -> dict:
    cpu0, redis0, wall0 = sum(os.times()[:2]), redis_cpu(redis_client), time.perf_counter()
    for n in range(events):
        await publish(build(n))
    wall, cpu = time.perf_counter() - wall0, sum(os.times()[:2]) - cpu0
    return {
        "wall_us": wall / events * 1e6,
        "cpu_us": cpu / events * 1e6,
        "redis_us": (redis_cpu(redis_client) - redis0) / events * 1e6,
    }


async def drain(layer, channel: str) -> None:
    while True:
        await layer.receive(channel)


async def one_round(events: int, redis_client, user_id: int, only: str | None = None) -> dict:
    from channels.layers import get_channel_layer

    from realtime import groups, history, publish

    redis_client.flushdb()
    history.set_history(None)
    trading = get_channel_layer(groups.TRADING_LAYER)
    channel = await trading.new_channel()
    await trading.group_add(groups.user(user_id, "orders"), channel)
    consumer = asyncio.create_task(drain(trading, channel))
    rows = {
        "trading event, before": (lambda m: before_user(user_id, m), order_update),
        "trading event, history": (lambda m: publish.apublish_user(user_id, "orders", m), order_update),
        "market trade, before": (before_trade, trade),
        "market trade, history": (publish.apublish_market, trade),
    }
    try:
        return {
            name: await measure(publish_one, build, events, redis_client)
            for name, (publish_one, build) in rows.items()
            if only is None or name == only
        }
    finally:
        consumer.cancel()


ROWS = ("trading event, before", "trading event, history", "market trade, before", "market trade, history")


def report(rounds: list[dict]) -> None:
    names = list(rounds[0])
    print(f"{'':<24}{'wall us/event':>15}{'cpu us/event':>15}{'redis us/event':>16}")
    for name in names:
        cells = [statistics.median(r[name][k] for r in rounds) for k in ("wall_us", "cpu_us", "redis_us")]
        print(f"{name:<24}" + "".join(f"{v:>15.1f}" if i < 2 else f"{v:>16.1f}" for i, v in enumerate(cells)))
    if len(names) < len(ROWS):
        return
    print("\nratios history / before (median of per-round ratios):")
    for kind in ("trading event", "market trade"):
        ratios = {
            k: statistics.median(r[f"{kind}, history"][k] / max(r[f"{kind}, before"][k], 1e-9) for r in rounds)
            for k in ("wall_us", "cpu_us", "redis_us")
        }
        wall, cpu, server = ratios["wall_us"], ratios["cpu_us"], ratios["redis_us"]
        print(f"  {kind:<14} wall x{wall:.2f}  cpu x{cpu:.2f}  redis x{server:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--only", choices=ROWS, help="one row only (for timing the whole process from outside)")
    args = parser.parse_args()
    if args.redis_db in (0, 1):
        raise SystemExit("databases 0 and 1 are never flushed: pick another --redis-db")

    from tests.integration.harness import claim_redis_db

    try:
        _db, lock = claim_redis_db((args.redis_db,), timeout=600)
    except TimeoutError:
        raise SystemExit(f"Redis database {args.redis_db} is in use by another run: wait, or pass --redis-db") from None
    try:
        setup(args.redis_db)
        import redis

        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        print(f"{args.events} events per row, {args.repeat} rounds, Redis db {args.redis_db}")
        rounds = [
            asyncio.run(one_round(args.events, client, user_id=990_000 + r, only=args.only)) for r in range(args.repeat)
        ]
        report(rounds)
        client.flushdb()
    finally:
        lock.close()


if __name__ == "__main__":
    main()
