"""The `reference` server: a bare `websockets` broadcast server fed by Redis pub/sub.

It subscribes (redis.asyncio) to the same pub/sub channels the project's market layer publishes
to, decodes each event once, and hands its pre-encoded text to `websockets.broadcast` for the
sockets subscribed to that symbol. No framework, no per-client work beyond the write: the lower
bound of what Python does here.

    python bench/reference_server.py --port P --redis-url URL --channel CHANNEL=SYMBOL ...
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import msgpack
import orjson
import redis.asyncio as aioredis
import websockets
from websockets.asyncio.server import serve


async def main(args: argparse.Namespace) -> None:
    symbol_of = dict(item.split("=", 1) for item in args.channel)
    subscribers: dict[str, set] = {symbol: set() for symbol in symbol_of.values()}

    client = aioredis.Redis.from_url(args.redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(*symbol_of)

    async def handler(ws) -> None:
        mine: list[str] = []
        try:
            async for raw in ws:
                request = orjson.loads(raw)
                symbols = [s for s in request.get("symbols", []) if s in subscribers]
                if request.get("type") != "subscribe_ticker" or not symbols:
                    await ws.send(orjson.dumps({"type": "error", "message": "subscribe_ticker only"}).decode())
                    continue
                for symbol in symbols:
                    subscribers[symbol].add(ws)
                    mine.append(symbol)
                await ws.send(orjson.dumps({"type": "subscribed", "stream": "ticker", "symbols": symbols}).decode())
        finally:
            for symbol in mine:
                subscribers[symbol].discard(ws)

    async def pump() -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            event = msgpack.unpackb(message["data"])  # channels_redis's serialisation of market_event()
            websockets.broadcast(subscribers[symbol_of[message["channel"].decode()]], event["text"])

    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(handler, "127.0.0.1", args.port, compression=None, ping_interval=None):
        print("ready", flush=True)
        pumping = asyncio.create_task(pump())
        await asyncio.wait([stop, pumping], return_when=asyncio.FIRST_COMPLETED)
        pumping.cancel()
    await pubsub.aclose()
    await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--channel", action="append", required=True, help="pub/sub channel=SYMBOL")
    asyncio.run(main(parser.parse_args()))
