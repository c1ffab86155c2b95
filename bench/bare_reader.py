"""The floor under the market-data worker: a client that only reads and parses the exchange's frames.

    .venv/bin/python bench/bare_reader.py WS_URL SYMBOL [SYMBOL ...]

The same streams as `runstream` (ticker, trade and depth@100ms of each symbol, the first 200 named in
the URL and the rest SUBSCRIBEd, as the worker does), read with the same library (websockets) and
parsed with orjson, and nothing else: no normalising, no books, no Redis. `bench/worker_load.py`
runs it beside the workers and reports their CPU per frame as a multiple of this one's, a figure a
shared machine's speed does not move. Prints `frames N` once a second.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from websockets.asyncio.client import connect

KINDS = ("ticker", "trade", "depth@100ms")
IN_URL = 200


async def read(ws_url: str, symbols: list[str]) -> None:
    streams = [f"{symbol.lower()}@{kind}" for symbol in sorted(symbols) for kind in KINDS]
    url = f"{ws_url}/stream?streams={'/'.join(streams[:IN_URL])}"
    frames = 0
    async with connect(url, max_size=2**23) as ws:
        if streams[IN_URL:]:
            await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": streams[IN_URL:], "id": 1}).decode())
        loop = asyncio.get_running_loop()
        report_at = loop.time() + 1
        while True:
            orjson.loads(await ws.recv(decode=False))
            frames += 1
            if loop.time() >= report_at:
                print(f"frames {frames}", flush=True)
                report_at += 1


if __name__ == "__main__":
    asyncio.run(read(sys.argv[1], sys.argv[2:]))
