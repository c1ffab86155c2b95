"""The background half of the system: the market-data worker with the paper-trading engine and bots.

`manage.py runstream` runs it as its own process (with REDIS_URL); `manage.py serve` runs it inside
the server's event loop (the embedded mode). Either way there is exactly one, because paper fills
and bot orders must happen once.
"""

from __future__ import annotations

import asyncio

from accounts import engine
from marketdata.stream import WorkerOptions, run_worker


async def run_market_and_bots(stop: asyncio.Event, options: WorkerOptions) -> None:
    """Stream market data, match paper orders on every trade and run the bots, until `stop` is set."""
    try:
        await asyncio.gather(
            run_worker(stop, listeners=(engine.handle_market_message,), options=options),
            engine.run_bots(stop),
        )
    finally:
        await engine.drain()  # fills already started are committed and published before exit
