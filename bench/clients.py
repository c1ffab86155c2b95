"""Benchmark clients: N `websockets` connections in one process, each subscribed to K tickers.

    python bench/clients.py --url ws://127.0.0.1:P/ws/market --clients N --symbols A,B --run ID ...

Prints `ready` once every connection has its `subscribed` ack, then records, for every measured
update (`m` = 1 and this run's id), two latencies from the publisher's `sent_ns`: to the moment the
frame was parsed off the socket (StampedConnection: what the server and the network cost), and to
the moment `recv()` returned it (adds this process's own queueing behind other sockets). It stops
when every connection has seen the last measured update of every symbol, when a line (`stop`)
arrives on stdin, or at --deadline; then writes three int64 series of equal length (native order:
arrival latencies, recv() latencies, the updates' `sent_ns`) to --out, prints `result {json}`, and
closes its sockets at the next stdin line or at end of stdin.

A frame may carry a JSON array of messages (a `?batch=1` connection): every message in it counts, and
all of them share the frame's arrival time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from array import array
from collections import deque

import msgpack
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode


class StampedConnection(ClientConnection):
    """Notes the wall clock when each message is parsed off the socket, before it queues for recv()."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arrivals: deque[int] = deque()

    def process_event(self, event) -> None:
        if isinstance(event, Frame) and event.fin and event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            self.arrivals.append(time.time_ns())
        super().process_event(event)


class Conn:
    def __init__(self, index: int):
        self.index = index
        self.ws = None
        self.received = 0
        self.warmup = 0
        self.frames_batched = 0  # array frames received, and the messages in them
        self.batched = 0
        self.pending: set[str] = set()
        self.closed_early = False
        self.close_code: int | None = None


async def open_one(conn: Conn, args, symbols: list[str]) -> None:
    conn.ws = await connect(
        args.url,
        create_connection=StampedConnection,
        compression=None,
        ping_interval=None,
        open_timeout=30,
        max_size=2**20,
    )
    await conn.ws.send(orjson.dumps({"type": "subscribe_ticker", "symbols": symbols}).decode())
    while True:
        raw = await asyncio.wait_for(conn.ws.recv(), 30)
        frame = msgpack.unpackb(raw, raw=False) if isinstance(raw, bytes) else orjson.loads(raw)  # ?format=msgpack
        conn.ws.arrivals.popleft()
        for reply in frame if isinstance(frame, list) else (frame,):
            if reply.get("type") == "subscribed":
                return
            if reply.get("type") == "error":
                raise RuntimeError(f"subscribe refused: {reply}")


async def read(conn: Conn, args, latencies: tuple[array, ...], last_seq, all_done, left: list[int]) -> None:
    run = args.run
    arrivals = conn.ws.arrivals
    on_wire, in_app, sent = latencies
    try:
        async for raw in conn.ws:
            now = time.time_ns()
            arrived = arrivals.popleft()
            frame = msgpack.unpackb(raw, raw=False) if isinstance(raw, bytes) else orjson.loads(raw)
            if type(frame) is list:
                conn.frames_batched += 1
                conn.batched += len(frame)
            for message in frame if type(frame) is list else (frame,):
                if message.get("run") != run:
                    continue  # acks, heartbeats, snapshots, or someone else's updates
                if not message["m"]:
                    conn.warmup += 1
                    continue
                on_wire.append(arrived - message["sent_ns"])
                in_app.append(now - message["sent_ns"])
                sent.append(message["sent_ns"])
                conn.received += 1
                if message["mark"] == last_seq and message["symbol"] in conn.pending:
                    conn.pending.discard(message["symbol"])
                    if not conn.pending:
                        left[0] -= 1
                        if left[0] == 0:
                            all_done.set()
    except ConnectionClosed:
        pass
    conn.closed_early = True  # the server closed the socket (the loop ends normally on a clean close)
    conn.close_code = conn.ws.close_code


def save(path: str, latencies: tuple[array, ...]) -> None:
    with open(path, "wb") as out:
        for values in latencies:
            values.tofile(out)


async def main(args: argparse.Namespace) -> None:
    symbols = args.symbols.split(",")
    conns = [Conn(i) for i in range(args.clients)]
    gate = asyncio.Semaphore(25)

    async def opened(conn: Conn) -> None:
        async with gate:
            await open_one(conn, args, symbols)

    await asyncio.wait_for(asyncio.gather(*(opened(c) for c in conns)), args.connect_timeout)
    latencies = (array("q"), array("q"), array("q"))
    all_done = asyncio.Event()
    left = [len(conns)]
    for conn in conns:
        conn.pending = set(symbols)
    readers = [asyncio.create_task(read(c, args, latencies, args.last_seq, all_done, left)) for c in conns]
    commands: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def read_stdin() -> None:  # `stop`: finish now; then `close` (or EOF): close the sockets and exit
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    cpu_before = sum(os.times()[:2])
    print("ready", flush=True)
    stop = asyncio.create_task(commands.get())
    await asyncio.wait(
        [stop, asyncio.create_task(all_done.wait())], timeout=args.deadline, return_when="FIRST_COMPLETED"
    )
    cpu = sum(os.times()[:2]) - cpu_before
    for task in readers:
        task.cancel()
    save(args.out, latencies)
    counts = [c.received for c in conns]
    summary = {
        "received": sum(counts),
        "warmup_received": sum(c.warmup for c in conns),
        "min_per_client": min(counts),
        "max_per_client": max(counts),
        "incomplete_clients": sum(1 for c in conns if c.pending),
        "closed_early": sum(1 for c in conns if c.closed_early),
        "close_codes": sorted({c.close_code for c in conns if c.closed_early}, key=str),
        "cpu_s": cpu,
        "array_frames": sum(c.frames_batched for c in conns),
        "messages_in_arrays": sum(c.batched for c in conns),
    }
    # The result goes out before the sockets close, so the server's teardown is not measured.
    print("result " + json.dumps(summary), flush=True)
    with contextlib.suppress(TimeoutError):
        if not stop.done():
            await asyncio.wait_for(stop, args.deadline)
        elif stop.result() is not None:
            await asyncio.wait_for(commands.get(), args.deadline)
    await asyncio.gather(*(asyncio.wait_for(c.ws.close(), 5) for c in conns), return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="fan-out benchmark clients")
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--symbols", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--last-seq", type=int, required=True, help="seq of the last measured update")
    parser.add_argument("--out", required=True)
    parser.add_argument("--connect-timeout", type=float, default=60)
    parser.add_argument("--deadline", type=float, required=True, help="seconds after ready before giving up")
    asyncio.run(main(parser.parse_args()))
