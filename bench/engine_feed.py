"""The paper engine's feed on its own: CPU per batch the worker hands it, matching stubbed out.

    .venv/bin/python bench/engine_feed.py [--batches 2000] [--warmup 200]

Run from a source tree (`cd /tmp/tree && .venv/bin/python /path/to/bench/engine_feed.py`) to compare
trees: the script imports the tree it runs in. Each batch is what the worker offers after a 100 ms
step of the local exchange at 100 symbols: 100 trades and 5 tickers. The matching run and the
revaluation are replaced by no-ops, so this measures the feed (queueing, the engine's per-message
work, the tasks it starts), not the database. Prints process CPU per batch.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")

import django

django.setup()

from accounts import engine, services  # noqa: E402
from marketdata.listeners import ListenerFeed  # noqa: E402
from realtime import protocol  # noqa: E402

# A tree from before the batched feed has the per-message entry point instead.
LISTENER = getattr(engine, "handle_market_messages", None) or engine.handle_market_message


def batch(number: int) -> list[dict]:
    trades = [
        protocol.trade_of(
            f"LOAD{i}USDT", "10.01500000", "1.23000000", "buy", number * 1000 + i, "2026-12-02T10:00:00.000Z"
        )
        for i in range(100)
    ]
    tickers = [
        {"type": "ticker", "symbol": f"LOAD{i}USDT", "price": "10.0", "timestamp": "2026-12-02T10:00:00.000Z"}
        for i in range(5)
    ]
    return trades + tickers


async def feed_all(feed: ListenerFeed, batches: list[list[dict]]) -> None:
    for messages in batches:
        feed.offer_many(messages)
        await feed._idle.wait()
        await asyncio.sleep(0)  # let the tasks the engine started run, as the worker's loop would


async def main(args: argparse.Namespace) -> None:
    services.orders_match_many = lambda **kwargs: None
    engine._revalue = lambda *args: None
    feed = ListenerFeed(LISTENER, 100_000)
    feed.start()
    batches = [batch(n) for n in range(args.warmup + args.batches)]
    await feed_all(feed, batches[: args.warmup])
    started = time.process_time()
    await feed_all(feed, batches[args.warmup :])
    print(
        f"{(time.process_time() - started) / args.batches * 1e6:.0f} us of CPU per batch of {len(batches[0])} messages"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1800)
    parser.add_argument("--warmup", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
