"""Memory per idle WebSocket connection in one daphne process: RSS delta / connections.

    .venv/bin/python bench/idle_memory.py [--connections 10000] [--only ours,ours-ticker,plain-channels,bare-asgi]
                                          [--repeat 1] [--json out.json]

Servers (each a fresh daphne process, one after another, in one run):
  ours            daphne + tradingsite.asgi; the clients open /ws/market and subscribe to nothing
  ours-ticker     the same; each client subscribes to one ticker (BENCH0USDT) and waits for the ack
  plain-channels  daphne + bench.plain_asgi (an AsyncJsonWebsocketConsumer on the core layer), no subscription
  bare-asgi       daphne + bench.bare_asgi (an ASGI callable: no Django, no Channels): daphne's own floor

Per server: start it (RLIMIT_NOFILE raised), open and close 200 connections to load whatever is
loaded lazily, read VmRSS, open N connections from 2 client processes and wait for all of them (and
their acks; at most --concurrency connecting at once per process, a failed one retried twice), let
it settle, read VmRSS again: (after - before) / N, in KiB. Every client connects
from 127.0.0.1, so the per-address limit is lifted through WS_MAX_CONNECTIONS_PER_IP, as a load test
must. Needs Redis on 127.0.0.1:6379 (database 11, locked like bench/fanout.py and flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOFILE = 200_000  # asked for; a container without CAP_SYS_RESOURCE keeps its hard limit (20,000 here)
SERVERS = {
    # name: (DJANGO_SETTINGS_MODULE, ASGI application, subscribe to one ticker)
    "ours": ("tradingsite.settings", "tradingsite.asgi:application", False),
    "ours-ticker": ("tradingsite.settings", "tradingsite.asgi:application", True),
    "plain-channels": ("bench.plain_settings", "bench.plain_asgi:application", False),
    "bare-asgi": ("tradingsite.settings", "bench.bare_asgi:application", False),
}
SYMBOL = "BENCH0USDT"


def raise_nofile() -> None:
    """As many descriptors as allowed: NOFILE, or the hard limit when it cannot be raised."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _child_setup() -> None:
    """In each child: many descriptors, and SIGKILL when the benchmark dies."""
    raise_nofile()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def rss_kib(pid: int, field: str = "VmRSS:") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"server not listening:\n{log.read_text()[-3000:]}")


# --- the client processes -----------------------------------------------------------------------


async def client_main(args: argparse.Namespace) -> None:
    """Open --count connections (subscribing when asked), print `ready {json}`, close them at end of stdin."""
    from websockets.asyncio.client import connect

    # A bounded number of connects under way: the gateway's Redis pools are bounded (before c30dca4
    # redis-py's asyncio pool refused past 100 with MaxConnectionsError: close 1011 for the client).
    gate = asyncio.Semaphore(args.concurrency)
    sockets, failures = [], []
    retried = [0]

    async def attempt():
        ws = await connect(args.url, compression=None, ping_interval=None, open_timeout=60, max_size=2**20)
        if args.subscribe:
            await ws.send(json.dumps({"type": "subscribe_ticker", "symbols": [args.subscribe]}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                replies = frame if isinstance(frame, list) else [frame]
                if any(r.get("type") == "subscribed" for r in replies):
                    break
                if any(r.get("type") == "error" for r in replies):
                    await ws.close()
                    raise RuntimeError(f"refused: {replies}")
        return ws

    async def one() -> None:
        async with gate:
            for tries in range(3):
                try:
                    sockets.append(await attempt())
                    return
                except Exception as exc:  # counted and reported, then tried again
                    if tries == 2:
                        failures.append(repr(exc))
                        return
                    retried[0] += 1
                    await asyncio.sleep(0.5)

    await asyncio.gather(*(one() for _ in range(args.count)))
    state = {"open": len(sockets), "failures": len(failures), "retried": retried[0], "first": failures[:3]}
    print("ready " + json.dumps(state), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until end of stdin
    await asyncio.gather(*(asyncio.wait_for(ws.close(), 10) for ws in sockets), return_exceptions=True)


# --- the benchmark ------------------------------------------------------------------------------


class Clients:
    def __init__(self, url: str, count: int, subscribe: bool, log: Path, concurrency: int):
        cmd = [sys.executable, __file__, "--client", "--url", url, "--count", str(count)]
        cmd += ["--concurrency", str(concurrency)]
        if subscribe:
            cmd += ["--subscribe", SYMBOL]
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, preexec_fn=_child_setup
            )

    def ready(self) -> dict:
        for raw in self.proc.stdout:
            line = raw.decode().strip()
            if line.startswith("ready "):
                return json.loads(line[6:])
        raise RuntimeError(f"client process exited ({self.proc.wait()}) before it was ready")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_daphne(app: str, port: int, env: dict, log: Path) -> subprocess.Popen:
    """daphne serving `app` on 127.0.0.1:`port`, its output appended to `log`; it dies with us."""
    from tests.integration.harness import DAPHNE

    with log.open("ab") as out:
        return subprocess.Popen(
            [DAPHNE, "-b", "127.0.0.1", "-p", str(port), app],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,
        )


def warm_up(url: str, count: int, subscribe: bool, log: Path, concurrency: int) -> None:
    """Open and close `count` connections, so whatever loads lazily is loaded before a baseline."""
    warm = Clients(url, count, subscribe, log, concurrency)
    warm.ready()
    warm.close()


def measure(name: str, args: argparse.Namespace, env: dict, workdir: Path) -> dict:
    from tests.integration.harness import free_port

    settings, app, subscribe = SERVERS[name]
    port = free_port()
    log = workdir / f"{name}-{port}.log"
    server = start_daphne(app, port, {**env, "DJANGO_SETTINGS_MODULE": settings}, log)
    url = f"ws://127.0.0.1:{port}/ws/market"
    try:
        wait_for_port(port, server, log)
        warm_up(url, args.warm, subscribe, workdir / "clients.log", args.concurrency)
        time.sleep(args.settle)
        before = rss_kib(server.pid)
        shares = [
            args.connections // args.client_procs + (i < args.connections % args.client_procs)
            for i in range(args.client_procs)
        ]
        started = time.monotonic()
        clients = [Clients(url, share, subscribe, workdir / "clients.log", args.concurrency) for share in shares]
        states = [c.ready() for c in clients]
        connect_s = time.monotonic() - started
        time.sleep(args.settle)
        after = rss_kib(server.pid)
        alive = server.poll() is None
        for c in clients:
            c.close()
        opened = sum(s["open"] for s in states)
        return {
            "server": name,
            "connections": opened,
            "failures": sum(s["failures"] for s in states),
            "retried": sum(s["retried"] for s in states),
            "first_failures": [f for s in states for f in s["first"]][:3],
            "rss_before_mb": before / 1024,
            "rss_after_mb": after / 1024,
            "kib_per_connection": (after - before) / opened if opened else float("nan"),
            "connect_s": connect_s,
            "server_alive": alive,
            "loadavg": os.getloadavg()[0],
        }
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def table(rows: list[dict]) -> str:
    head = (
        "| server | connections | failures (retried) | RSS before MB | RSS after MB | KiB / connection | vs bare-asgi "
        "| connect s | load avg |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    bare = next((r for r in rows if r["server"] == "bare-asgi"), None)
    for r in rows:
        versus = f"{r['kib_per_connection'] / bare['kib_per_connection']:.2f}x" if bare else "-"
        out.append(
            f"| {r['server']} | {r['connections']} | {r['failures']} ({r['retried']}) | {r['rss_before_mb']:.1f} "
            f"| {r['rss_after_mb']:.1f} | {r['kib_per_connection']:.1f} | {versus} | {r['connect_s']:.0f} "
            f"| {r['loadavg']:.2f} |"
        )
    return "\n".join(out)


def main(args: argparse.Namespace) -> list[list[dict]]:
    from tests.integration.harness import Stack, claim_redis_db, redis_answers

    names = [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        raise SystemExit(f"unknown server(s) {unknown}; choose from {', '.join(SERVERS)}")
    if not redis_answers():
        raise SystemExit("Redis is not answering on 127.0.0.1:6379: start it first")
    try:
        _db, lock = claim_redis_db((args.redis_db,), timeout=args.wait_for_db)
    except TimeoutError:
        raise SystemExit(f"Redis database {args.redis_db} is in use by another run: wait, or pass --redis-db") from None
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    stack = Stack(
        workdir=workdir,
        redis_url=f"redis://127.0.0.1:6379/{args.redis_db}",
        database_path=workdir / "db.sqlite3",
        extra_env={"MARKET_SYMBOLS": SYMBOL, "WS_MAX_CONNECTIONS_PER_IP": "1000000"},
    )
    stack.manage("migrate", "--no-input")
    import redis

    print(
        f"# idle memory: {args.connections} connections per server, {args.client_procs} client processes, "
        f"{os.cpu_count()} CPUs; logs in {workdir}",
        flush=True,
    )
    runs = []
    for repetition in range(args.repeat):
        rows = []
        for name in names:
            redis.Redis.from_url(stack.redis_url).flushdb()
            print(f"- {name} ...", flush=True)
            rows.append(measure(name, args, stack.env(), workdir))
            row = rows[-1]
            print(f"  {row['kib_per_connection']:.1f} KiB per connection ({row['failures']} failures)", flush=True)
        runs.append(rows)
        print(f"\n## run {repetition + 1} of {args.repeat}\n\n{table(rows)}\n", flush=True)
    if args.repeat > 1:
        per = [statistics.median(rows[i]["kib_per_connection"] for rows in runs) for i in range(len(names))]
        print("## median KiB / connection: " + ", ".join(f"{n} {v:.1f}" for n, v in zip(names, per, strict=True)))
    lock.close()
    return runs


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Memory per idle WebSocket connection (see docs/BENCHMARKS.md)")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--only", default=",".join(SERVERS), help=f"from: {', '.join(SERVERS)}")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--warm", type=int, default=200, help="connections opened and closed before the baseline")
    parser.add_argument("--settle", type=float, default=3, help="seconds to wait before each RSS reading")
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--wait-for-db", type=float, default=5, help="seconds to wait for the database's lock")
    parser.add_argument("--concurrency", type=int, default=20, help="connects under way at once per client process")
    parser.add_argument("--json")
    # the client processes (started by the benchmark itself)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--subscribe", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.client:
        asyncio.run(client_main(arguments))
    else:
        results = main(arguments)
        if arguments.json:
            Path(arguments.json).write_text(json.dumps({"args": vars(arguments), "runs": results}, indent=2))
