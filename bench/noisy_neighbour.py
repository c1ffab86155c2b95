"""Noisy neighbour: can one user's heavy requests hold up another user's connect and fills?

    .venv/bin/python bench/noisy_neighbour.py [--rounds 3] [--seconds 15] [--postgres]
        [--pattern toggle|repeat] [--server-root DIR] [--json FILE]

A real stack (tests/integration/harness.py): Redis, one daphne, the `runstream` worker on the local
exchange (`simulate_exchange`, printing trades), a database (a temporary SQLite file, or with
--postgres a temporary PostgreSQL database on 127.0.0.1:5432).

User A has 200 resting limit orders and 20 DCA bots (1 s interval) and keeps 5 /ws/trading
connections open. User B measures, one after the other and over and over:
  connect    opening /ws/trading and sending `subscribe orders/portfolio` until `subscribed` arrives
  snapshot   the same, until B's portfolio snapshot arrives (it comes after the ack)
  fill       a market buy POSTed to /api/orders/ until its `order_update` with status `filled`
             arrives on B's open connection
in two phases per round, in the same run:
  idle       A's bots are stopped and his connections are silent
  noisy      A's bots run and each of his 5 connections sends a request WS_RATE_LIMIT_PER_SECOND
             minus one times a second (9/s by default), reading every reply, the next request
             once the last one is acknowledged (a client that never waits only piles requests
             up in the server's queue for that connection: see the "Noisy neighbour" section of
             docs/BENCHMARKS.md). --pattern toggle
             (default) alternates `unsubscribe` and `subscribe` of orders/bot_status/portfolio,
             so every second request loads all three snapshots (a repeat `subscribe` re-sends
             nothing since realtime/session.py keeps what a connection already has: --pattern
             repeat measures that).
The order of the two phases alternates round by round; each phase settles for --settle seconds
before it is measured. What is printed: p50 and p99 of each of B's latencies per phase, and the
ratio noisy / idle of the same run. Limits are lifted through their environment variables only
(connections per user and address, login rates).

--server-root DIR runs the servers from another checkout (e.g. `git archive <commit>` unpacked),
with this file's clients: how "before" figures are taken.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration import harness  # noqa: E402

REDIS_DBS = (15, 14, 13, 12, 11, 10)  # the integration suite takes 9..2
TIMEOUT = 30.0
SYMBOL = "BTCUSDT"
CHANNELS = ["orders", "bot_status", "portfolio"]
ENV = {
    "WS_MAX_CONNECTIONS_PER_USER": "100",
    "WS_MAX_CONNECTIONS_PER_IP": "1000",
    "LOGIN_RATE_PER_MINUTE": "1000",
    "LOGIN_FAILURE_LIMIT": "1000",
}

SEED = """
import json
from decimal import Decimal
from django.contrib.auth import get_user_model
from accounts import services
User = get_user_model()
ids = {}
for name in ("noisy-a", "quiet-b"):
    user, _ = User.objects.update_or_create(username=name)
    user.set_password(name + "-password-1")
    user.save()
    ids[name] = user.pk
a = ids["noisy-a"]
for n in range(ORDERS):
    services.order_place(user_id=a, symbol="BTCUSDT", side="buy", order_type="limit",
                         quantity=Decimal("0.001"), price=Decimal(1000 + n))
bots = []
for n in range(BOTS):  # a loop, not a comprehension: `shell -c` runs this with separate locals
    bots.append(services.bot_create(user_id=a, name=f"dca {n}", symbol=("BTCUSDT", "ETHUSDT")[n % 2],
                                    params={"quote_amount": "10", "interval_seconds": 1}).pk)
print(json.dumps({"ids": ids, "bots": bots}))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class Samples:
    connect: list[float] = field(default_factory=list)
    snapshot: list[float] = field(default_factory=list)
    fill: list[float] = field(default_factory=list)
    a_requests: int = 0  # A's requests answered during the phase
    a_frames: int = 0  # every frame A read
    a_closes: int = 0
    refused: int = 0  # B's market orders refused for a stale market (counted, not measured)
    seconds: float = 0.0

    def extend(self, other: Samples) -> None:
        for name in ("connect", "snapshot", "fill"):
            getattr(self, name).extend(getattr(other, name))
        self.a_requests += other.a_requests
        self.a_frames += other.a_frames
        self.a_closes += other.a_closes
        self.refused += other.refused
        self.seconds += other.seconds


async def token(gateway: harness.Gateway, name: str) -> str:
    status, body = await harness.ahttp_json(
        "POST", f"{gateway.http}/api/token/", {"username": name, "password": f"{name}-password-1"}
    )
    assert status == 200, body
    return body["access"]


class Noise:
    """User A's connections: silent, or sending at the rate limit and reading everything."""

    def __init__(self, url: str, connections: int, rate: float, pattern: str):
        self.url, self.connections, self.rate, self.pattern = url, connections, rate, pattern
        self.loud = asyncio.Event()
        self.requests = self.frames = self.closes = 0
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._connection(n)) for n in range(self.connections)]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _connection(self, n: int) -> None:
        while True:
            try:
                async with websockets.connect(self.url, open_timeout=TIMEOUT, max_size=2**24) as ws:
                    acks: asyncio.Queue = asyncio.Queue()
                    reader = asyncio.create_task(self._read(ws, acks))
                    try:
                        await ws.send(json.dumps({"type": "subscribe", "channels": CHANNELS}))
                        await asyncio.wait_for(acks.get(), TIMEOUT)
                        await self._send(ws, acks)
                    finally:
                        reader.cancel()
            except (websockets.ConnectionClosed, OSError, TimeoutError):
                self.closes += 1
                await asyncio.sleep(0.5)

    async def _read(self, ws, acks: asyncio.Queue) -> None:
        async for frame in ws:
            self.frames += 1
            if '"subscribed"' in frame[:40] or '"unsubscribed"' in frame[:40]:
                acks.put_nowait(frame)

    async def _send(self, ws, acks: asyncio.Queue) -> None:
        """One request at a time (the next after the last one's ack), at most `rate` a second."""
        subscribed, period = True, 1 / self.rate
        while True:
            await self.loud.wait()
            started = time.monotonic()
            if self.pattern == "toggle":
                subscribed = not subscribed
            kind = "subscribe" if subscribed else "unsubscribe"
            await ws.send(json.dumps({"type": kind, "channels": CHANNELS}))
            await asyncio.wait_for(acks.get(), TIMEOUT)
            self.requests += 1
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))


class Bee:
    """User B: one connection that reads his order updates, and the measurements."""

    def __init__(self, gateway: harness.Gateway, token_: str):
        self.gateway, self.token = gateway, token_
        self.url = f"{gateway.ws}/ws/trading?token={token_}"
        self.filled: dict[int, asyncio.Future] = {}
        self.early: dict[int, float] = {}

    async def open(self) -> None:
        self.ws = await websockets.connect(self.url, open_timeout=TIMEOUT, max_size=2**24)
        await self.ws.send(json.dumps({"type": "subscribe", "channels": ["orders"]}))
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            message = json.loads(frame)
            if message.get("type") == "order_update" and message.get("status") == "filled":
                at, order_id = time.monotonic(), int(message["order_id"])
                waiting = self.filled.get(order_id)
                if waiting is None:
                    self.early[order_id] = at  # the event can beat the POST's response
                elif not waiting.done():
                    waiting.set_result(at)

    async def connect_once(self, samples: Samples) -> None:
        started = time.monotonic()
        async with websockets.connect(self.url, open_timeout=TIMEOUT, max_size=2**24) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["orders", "portfolio"]}))
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                if message.get("type") == "error":
                    raise RuntimeError(f"B's subscribe failed: {message}")
                if message.get("type") == "subscribed":
                    samples.connect.append(time.monotonic() - started)
                elif message.get("type") == "portfolio":
                    samples.snapshot.append(time.monotonic() - started)
                    return

    async def fill_once(self, samples: Samples) -> None:
        body = {"symbol": SYMBOL, "side": "buy", "type": "market", "quantity": "0.0001"}
        started = time.monotonic()
        status, order = await harness.ahttp_json("POST", f"{self.gateway.http}/api/orders/", body, self.token)
        if status == 400 and "try again" in str(order):
            samples.refused += 1  # the worker's book or price went stale (an overloaded machine): not a fill
            return
        if status != 201 or order.get("status") != "filled":
            raise RuntimeError(f"B's market order was not filled: {status} {order}")
        order_id = int(order["id"])
        at = self.early.pop(order_id, None)
        if at is None:
            self.filled[order_id] = asyncio.get_running_loop().create_future()
            try:
                at = await asyncio.wait_for(self.filled[order_id], TIMEOUT)
            finally:
                del self.filled[order_id]
        samples.fill.append(at - started)

    async def measure(self, seconds: float, pause: float) -> Samples:
        samples, started = Samples(), time.monotonic()
        while time.monotonic() - started < seconds:
            await self.connect_once(samples)
            await self.fill_once(samples)
            await asyncio.sleep(pause)  # pacing, not synchronisation
        samples.seconds = time.monotonic() - started
        return samples


async def set_bots(gateway: harness.Gateway, token_: str, bots: list[int], action: str) -> None:
    for bot in bots:
        status, body = await harness.ahttp_json("POST", f"{gateway.http}/api/bots/{bot}/{action}/", {}, token_)
        assert status == 200, (action, bot, status, body)


async def run(args, gateway: harness.Gateway, seeded: dict) -> dict:
    a_token, b_token = await token(gateway, "noisy-a"), await token(gateway, "quiet-b")
    noise = Noise(f"{gateway.ws}/ws/trading?token={a_token}", args.connections, args.rate, args.pattern)
    noise.start()
    bee = Bee(gateway, b_token)
    await bee.open()
    await bee.measure(2, args.pause)  # warm-up: first connects and fills are not counted
    totals = {"idle": Samples(), "noisy": Samples()}
    per_round = []
    for number in range(args.rounds):
        order = ("idle", "noisy") if number % 2 == 0 else ("noisy", "idle")
        figures = {}
        for phase in order:
            if phase == "noisy":
                await set_bots(gateway, a_token, seeded["bots"], "start")
                noise.loud.set()
            else:
                noise.loud.clear()
                await set_bots(gateway, a_token, seeded["bots"], "stop")
            await asyncio.sleep(args.settle)
            before = (noise.requests, noise.frames, noise.closes)
            samples = await bee.measure(args.seconds, args.pause)
            samples.a_requests = noise.requests - before[0]
            samples.a_frames = noise.frames - before[1]
            samples.a_closes = noise.closes - before[2]
            totals[phase].extend(samples)
            figures[phase] = summary(samples)
            print(f"round {number + 1} {phase:5}: {line(figures[phase])}", flush=True)
        per_round.append(figures)
    noise.loud.clear()
    await noise.stop()
    await bee.ws.close()
    result = {phase: summary(samples) for phase, samples in totals.items()}
    result["ratio"] = {
        f"{metric}_{q}": result["noisy"][metric][q] / result["idle"][metric][q]
        for metric in ("connect", "snapshot", "fill")
        for q in ("p50", "p99")
    }
    result["rounds"] = per_round
    return result


def summary(samples: Samples) -> dict:
    figures = {
        metric: {
            "n": len(values),
            "p50": statistics.median(values) * 1000,
            "p99": percentile(values, 99) * 1000,
        }
        for metric in ("connect", "snapshot", "fill")
        if (values := getattr(samples, metric))
    }
    figures["a_requests_per_s"] = samples.a_requests / samples.seconds if samples.seconds else 0.0
    figures["a_frames_per_s"] = samples.a_frames / samples.seconds if samples.seconds else 0.0
    figures["a_closes"] = samples.a_closes
    figures["b_refused"] = samples.refused
    return figures


def line(figures: dict) -> str:
    parts = [
        f"{metric} p50 {figures[metric]['p50']:6.1f} p99 {figures[metric]['p99']:6.1f} ms (n={figures[metric]['n']})"
        for metric in ("connect", "snapshot", "fill")
    ]
    a = f"A {figures['a_requests_per_s']:.1f} req/s, {figures['a_frames_per_s']:.0f} frames/s"
    if figures["b_refused"]:
        a += f" | B refused {figures['b_refused']}"
    return " | ".join([*parts, a])


@contextlib.contextmanager
def postgres_database():
    name = f"bench_noisy_{uuid.uuid4().hex[:8]}"
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"]
    subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True, capture_output=True)
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per phase")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after a phase change before measuring")
    parser.add_argument("--pause", type=float, default=0.1, help="B's pause between two measurements")
    parser.add_argument("--connections", type=int, default=5)
    parser.add_argument("--rate", type=float, default=9.0, help="A's requests a second per connection")
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--bots", type=int, default=20)
    parser.add_argument("--pattern", choices=("toggle", "repeat"), default="toggle")
    parser.add_argument("--postgres", action="store_true", help="a temporary PostgreSQL database, not SQLite")
    parser.add_argument("--server-root", type=Path, default=None, help="run the servers from this checkout")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the servers (repeatable)")
    args = parser.parse_args()
    if args.server_root:
        harness.ROOT = args.server_root.resolve()
    if not harness.redis_answers():
        sys.exit("Redis must answer on 127.0.0.1:6379")
    db, lock = harness.claim_redis_db(REDIS_DBS)
    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()
    workdir = Path(tempfile.mkdtemp(prefix="bench-noisy-"))
    print(f"logs in {workdir}; servers from {harness.ROOT}; Redis db {db}; load {os.getloadavg()}", flush=True)
    print(f"{' '.join(sys.argv[1:])}", flush=True)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(lock.close)
        extra = dict(ENV, **dict(item.split("=", 1) for item in args.env))
        stack = harness.Stack(workdir, f"redis://127.0.0.1:6379/{db}", workdir / "db.sqlite3", extra_env=extra)
        if args.postgres:
            stack.extra_env["DATABASE_URL"] = cleanup.enter_context(postgres_database())
        cleanup.callback(stack.stop_all)
        stack.manage("migrate", "--no-input")
        exchange_port = harness.free_port()
        exchange = stack.spawn(
            "exchange", [harness.PYTHON, "manage.py", "simulate_exchange", "--port", str(exchange_port), "--seed", "7"]
        )
        harness.wait_until_http(f"http://127.0.0.1:{exchange_port}/api/v3/ping", exchange)
        gateway = stack.daphne()
        worker = stack.spawn(
            "runstream",
            [harness.PYTHON, "manage.py", "runstream"],
            BINANCE_WS_URL=f"ws://127.0.0.1:{exchange_port}",
            BINANCE_REST_URL=f"http://127.0.0.1:{exchange_port}",
            MARKET_SOURCE="simulator",
        )
        harness.wait_until(lambda: gateway.status()["market_data"].get("connected"), worker, "worker not connected")
        # after the worker: it enables the symbols it finds on the exchange
        script = SEED.replace("ORDERS", str(args.orders)).replace("BOTS", str(args.bots))
        try:
            seeded = json.loads(stack.manage("shell", "-c", script).stdout.strip().splitlines()[-1])
        except subprocess.CalledProcessError as failed:
            sys.exit(f"seeding failed:\n{failed.stderr[-3000:]}")
        result = asyncio.run(run(args, gateway, seeded))
        print(f"\nall rounds ({args.pattern}, {'PostgreSQL' if args.postgres else 'SQLite'}):")
        for phase in ("idle", "noisy"):
            print(f"  {phase:5}: {line(result[phase])}")
        print("  noisy / idle: " + ", ".join(f"{k} {v:.2f}x" for k, v in result["ratio"].items()))
        print(f"load {os.getloadavg()}")
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
