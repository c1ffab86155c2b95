"""Where an idle /ws/market connection's memory goes: tracemalloc in a daphne process, per allocation site.

    .venv/bin/python bench/trace_idle.py [--connections 2000] [--frames 12] [--top 40] [--redis-db 1]

Starts daphne with `bench.trace_idle:application` (tradingsite.asgi's application, with tracemalloc
started first and a SIGUSR1 handler that writes a snapshot), opens and closes 200 connections to load
what is loaded lazily, takes a snapshot, opens N idle connections (bench/idle_memory.py's clients),
takes another, and prints the difference in bytes per connection, grouped by the innermost frame
in our code (else by the library that allocated). tracemalloc
sees Python's allocations only (not Twisted's socket buffers in C, nor the allocator's slack), so the
figures add up to less than bench/idle_memory.py's RSS per connection.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from pathlib import Path

if __name__ != "__main__":  # inside daphne: trace from the start, write a snapshot on each SIGUSR1
    tracemalloc.start(int(os.environ.get("TRACE_FRAMES", "12")))
    _taken = [0]

    def _dump(_signum, _frame) -> None:
        import gc

        gc.collect()
        tracemalloc.take_snapshot().dump(f"{os.environ['TRACE_SNAPSHOT']}.{_taken[0]}")
        _taken[0] += 1
        Path(os.environ["TRACE_SNAPSHOT"] + ".done").write_text(str(_taken[0]))

    signal.signal(signal.SIGUSR1, _dump)
    from tradingsite.asgi import application  # noqa: F401


def _wait_for(path, count: int, proc) -> None:
    import time

    while not (path.exists() and path.read_text() == str(count)):
        if proc.poll() is not None:
            raise RuntimeError("daphne exited")
        time.sleep(0.2)


def main() -> None:
    import argparse
    import tempfile
    import time

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from bench.idle_memory import Clients, raise_nofile, rss_kib, start_daphne, wait_for_port, warm_up
    from tests.integration.harness import Stack, claim_redis_db, free_port

    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--redis-db", type=int, default=1)
    args = parser.parse_args()

    _db, lock = claim_redis_db((args.redis_db,), timeout=5)
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="bench-trace-"))
    stack = Stack(
        workdir=workdir,
        redis_url=f"redis://127.0.0.1:6379/{args.redis_db}",
        database_path=workdir / "db.sqlite3",
        extra_env={"MARKET_SYMBOLS": "BENCH0USDT", "WS_MAX_CONNECTIONS_PER_IP": "1000000"},
    )
    stack.manage("migrate", "--no-input")
    import redis

    redis.Redis.from_url(stack.redis_url).flushdb()
    snap = workdir / "snap"
    port = free_port()
    log = workdir / "daphne.log"
    env = {**stack.env(), "TRACE_SNAPSHOT": str(snap), "TRACE_FRAMES": str(args.frames)}
    server = start_daphne("bench.trace_idle:application", port, env, log)
    url = f"ws://127.0.0.1:{port}/ws/market"
    try:
        wait_for_port(port, server, log)
        warm_up(url, 200, False, workdir / "clients.log", 20)
        time.sleep(3)
        done = Path(str(snap) + ".done")
        server.send_signal(signal.SIGUSR1)
        _wait_for(done, 1, server)
        before = rss_kib(server.pid)
        clients = Clients(url, args.connections, False, workdir / "clients.log", 20)
        state = clients.ready()
        time.sleep(3)
        after = rss_kib(server.pid)
        server.send_signal(signal.SIGUSR1)
        _wait_for(done, 2, server)
        clients.close()
    finally:
        server.kill()  # no drain: the figures are taken
        server.wait()
        lock.close()
    n = state["open"]
    first = tracemalloc.Snapshot.load(str(snap) + ".0")
    second = tracemalloc.Snapshot.load(str(snap) + ".1")
    stats = second.compare_to(first, "traceback")
    total = sum(s.size_diff for s in stats)
    print(f"# {n} connections; traced {total / n:.0f} B/connection; RSS {(after - before) / n * 1024:.0f} B")
    print(f"# (RSS under tracemalloc includes its own bookkeeping); snapshots in {workdir}")
    sites: dict[str, list[float]] = {}
    for stat in stats:
        site = _attributed(stat.traceback)
        sizes = sites.setdefault(site, [0.0, 0.0])
        sizes[0] += stat.size_diff / n
        sizes[1] += stat.count_diff / n
    print("\nB/conn  blocks  site (our innermost frame, else the library that allocated)")
    for site, (size, count) in sorted(sites.items(), key=lambda item: -item[1][0])[: args.top]:
        if abs(size) >= 8:
            print(f"{size:6.0f}  {count:6.2f}  {site}")


OURS = ("realtime/", "tradingsite/", "bench/")


def _short(frame) -> str:
    name = frame.filename
    for prefix in ("site-packages/", "python3.11/", f"{Path(__file__).resolve().parents[1]}/"):
        name = name.split(prefix, 1)[-1]
    return f"{name}:{frame.lineno}"


def _attributed(traceback) -> str:
    """The innermost frame in our code (what we can change), else the library that allocated."""
    frames = [_short(frame) for frame in reversed(traceback)]  # the allocating frame first
    ours = next((frame for frame in frames if frame.startswith(OURS)), None)
    return ours or f"({frames[0].split('/')[0]}) {frames[0]}"


if __name__ == "__main__":
    main()
