"""The market-data worker at Binance-like rates: how much of a core `runstream` needs for 100 symbols.

    .venv/bin/python bench/worker_load.py [--symbols 100] [--trades 20] [--seconds 30] [--warmup 20]
                                          [--code NAME=PATH ...] [--repeat 1] [--profile DIR] [--json out.json]

One local exchange (`manage.py simulate_exchange`: @depth@100ms and a ticker every second per symbol,
`--trades` trades a second per symbol) serves the whole run. Against it, one after another, the
`runstream` worker of each `--code` source tree (default: this one; `--code base=/tmp/base` adds a
checkout to compare, the rotation repeated `--repeat` times so no tree always goes first) streams
every symbol into Redis (channel layer, snapshot cache, trade history) after a warm-up in which it
fetches the depth snapshots. Over the measured window: the worker's CPU share (user + sys over
wall: 0.25 is a quarter of a core), the exchange's and Redis's separately, what the worker read and
published (its /metrics counters), its CPU per 1000 frames read, and from that its share at the full
rate (symbols x (trades + 10 depth diffs + 1 ticker) frames a second) for when a loaded machine keeps
the exchange below it. Nobody is connected to the gateway: this is the worker's own cost.
Needs Redis on 127.0.0.1:6379; uses its own database number (flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fanout import PY_SPY, BoundService, cpu_seconds, ratio, redis_client, redis_cpu, summarise_profile  # noqa: E402
from tests.integration.harness import PYTHON, Stack, claim_redis_db, free_port, redis_answers  # noqa: E402

LISTENING = re.compile(r"listening on (ws://\S+) \(REST (http://\S+)\)")
PUBLISHED = re.compile(r'^realtime_published_total\{kind="(\w+)"\} ([0-9.e+]+)$', re.M)
FRAMES = re.compile(r"^marketdata_frames_total ([0-9.e+]+)$", re.M)


def wait_for(predicate, what: str, timeout: float, service: BoundService | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service is not None and not service.alive():
            raise RuntimeError(f"{service.name} exited while waiting for {what}:\n{service.log()[-3000:]}")
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not happen within {timeout:g} s")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (a local URL)
        return json.loads(response.read())


def published(metrics_port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    counts = {kind: float(value) for kind, value in PUBLISHED.findall(text)}
    if frames := FRAMES.search(text):  # a worker older than this counter reports none
        counts["frames read"] = float(frames.group(1))
    return counts


FLOOR = "bare reader"
READER_FRAMES = re.compile(r"^frames (\d+)$", re.M)


def reader_frames(log: Path) -> int:
    found = READER_FRAMES.findall(log.read_text())
    return int(found[-1]) if found else 0


def exchange_trades(rest_url: str) -> int:
    return sum(m["trades"] for m in get_json(f"{rest_url}/_sim/state")["markets"].values())


def subscribed_streams(rest_url: str) -> int:
    return sum(len(c.get("subscriptions", [])) for c in get_json(f"{rest_url}/_sim/state")["connections"])


class Run:
    def __init__(self, args: argparse.Namespace, stack: Stack, workdir: Path, symbols: list[str]):
        self.args, self.stack, self.workdir, self.symbols = args, stack, workdir, symbols
        self.exchange: BoundService | None = None
        self.exchange_urls: tuple[str, str] = ("", "")

    def start_exchange(self) -> None:
        args = [PYTHON, "manage.py", "simulate_exchange", "--port", "0", "--symbols", ",".join(self.symbols)]
        args += ["--interval", "0.1", "--trade-chance", str(self.args.trades / 10), "--seed", "7"]
        self.exchange = BoundService("exchange", args, self.stack.env(), self.workdir / "exchange.log").start()
        match = wait_for(lambda: LISTENING.search(self.exchange.log()), "the exchange's start", 60, self.exchange)
        self.exchange_urls = (match.group(1), match.group(2))

    def measure_floor(self) -> dict:
        """The bare reader (bench/bare_reader.py) over the same window: what reading the frames costs."""
        ws_url, rest_url = self.exchange_urls
        log = self.workdir / f"bare-reader-{int(time.time())}.log"
        args = [PYTHON, str(ROOT / "bench" / "bare_reader.py"), ws_url, *self.symbols]
        reader = BoundService("bare-reader", args, self.stack.env(), log).start()
        try:
            streams = 3 * len(self.symbols)
            wait_for(lambda: subscribed_streams(rest_url) >= streams, f"{streams} streams subscribed", 120, reader)
            time.sleep(min(self.args.warmup, 5))
            frames0, cpu0, t0 = reader_frames(log), cpu_seconds(reader.process.pid), time.monotonic()
            time.sleep(self.args.seconds)
            wall = time.monotonic() - t0
            cpu, frames = cpu_seconds(reader.process.pid) - cpu0, (reader_frames(log) - frames0) / wall
        finally:
            reader.stop()
        full_rate = len(self.symbols) * (self.args.trades + 10 + 1)
        return {
            "code": FLOOR,
            "frames_per_s": frames,
            "cpu_ms_per_1000_frames": 1e6 * cpu / wall / frames if frames else None,
            "full_rate_frames_per_s": full_rate,
            "worker_cpu_share_at_full_rate": cpu / wall / frames * full_rate if frames else None,
            "worker_cpu_share": cpu / wall,
            "exchange_cpu_share": float("nan"),
            "redis_cpu_share": float("nan"),
            "published_per_s": {},
            "exchange_trades_per_s": float("nan"),
            "window_s": wall,
            "load": os.getloadavg()[0],
        }

    def measure(self, name: str, tree: Path) -> dict:
        ws_url, rest_url = self.exchange_urls
        metrics_port = free_port()
        database = self.workdir / f"{name}.sqlite3"
        env = self.stack.env(
            DATABASE_URL=f"sqlite:///{database}",
            MARKET_SOURCE="simulator",
            BINANCE_WS_URL=ws_url,
            BINANCE_REST_URL=rest_url,
            WORKER_METRICS_PORT=str(metrics_port),
        )
        if not database.exists():
            subprocess.run(
                [PYTHON, "manage.py", "migrate", "--no-input"], cwd=tree, env=env, check=True, capture_output=True
            )
        redis_client(self.stack.redis_url).flushdb()
        log = self.workdir / f"worker-{name}-{int(time.time())}.log"
        worker = BoundService(f"worker-{name}", [PYTHON, "manage.py", "runstream"], env, log)
        worker.start_in(tree)
        try:
            streams = 3 * len(self.symbols)
            wait_for(lambda: subscribed_streams(rest_url) >= streams, f"{streams} streams subscribed", 120, worker)
            time.sleep(self.args.warmup)  # the depth snapshots (4 at a time) and the first books: not measured
            pid, exchange_pid = worker.process.pid, self.exchange.process.pid
            before = published(metrics_port)
            trades0 = exchange_trades(rest_url)
            cpu0, ex0, redis0, t0 = (
                cpu_seconds(pid),
                cpu_seconds(exchange_pid),
                redis_cpu(self.stack.redis_url),
                time.monotonic(),
            )
            profiler = None
            if self.args.profile:
                profile_path = Path(self.args.profile) / f"worker-{name}-{int(time.time())}.txt"
                cmd = [PY_SPY, "record", "--pid", str(pid), "--duration", str(int(self.args.seconds)), "--rate", "100"]
                # --gil: only the thread holding the GIL. Without it a thread waiting for the GIL (the
                # event loop while the database thread runs) counted as busy in whatever call it waited in.
                cmd += ["--gil", "--format", "raw", "--output", str(profile_path)]
                profiler = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(self.args.seconds)
            wall = time.monotonic() - t0
            cpu, ex_cpu = cpu_seconds(pid) - cpu0, cpu_seconds(exchange_pid) - ex0
            redis_used = redis_cpu(self.stack.redis_url) - redis0
            trades = exchange_trades(rest_url) - trades0
            after = published(metrics_port)
            alive = worker.alive()
            if profiler is not None:
                profiler.wait(self.args.seconds + 60)
                summarise_profile(profile_path)
        finally:
            worker.stop()
        sent = {kind: (after.get(kind, 0) - before.get(kind, 0)) / wall for kind in sorted(after)}
        full_rate = len(self.symbols) * (self.args.trades + 10 + 1)  # trades, depth@100ms, ticker per second
        frames = sent.get("frames read")
        return {
            "frames_per_s": frames,
            "cpu_ms_per_1000_frames": 1e6 * cpu / wall / frames if frames else None,
            "full_rate_frames_per_s": full_rate,
            "worker_cpu_share_at_full_rate": cpu / wall / frames * full_rate if frames else None,
            "code": name,
            "worker_cpu_share": cpu / wall,
            "exchange_cpu_share": ex_cpu / wall,
            "redis_cpu_share": redis_used / wall,
            "published_per_s": sent,
            "exchange_trades_per_s": trades / wall,
            "window_s": wall,
            "worker_alive": alive,
            "errors_in_log": worker.log().count("Traceback"),
            "load": os.getloadavg()[0],
        }


def _start_in(self: BoundService, tree: Path) -> BoundService:
    """BoundService.start with the worker's own source tree as its working directory."""
    from bench.fanout import _die_with_parent

    self._log = self.log_path.open("ab")
    self.process = subprocess.Popen(
        self.args,
        cwd=tree,
        env=self.env,
        stdout=self._log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    return self


BoundService.start_in = _start_in


def table(rows: list[dict]) -> str:
    lines = [
        "| code | worker CPU | exchange CPU | Redis CPU | exchange trades/s | frames read/s | published "
        "tickers/s | trades/s | books/s | worker CPU ms / 1000 frames | worker CPU at the full rate "
        "| CPU per frame vs the bare reader |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    floors = [r["cpu_ms_per_1000_frames"] for r in rows if r["code"] == FLOOR and r["cpu_ms_per_1000_frames"]]
    floor = sum(floors) / len(floors) if floors else None
    for r in rows:
        p = r["published_per_s"]
        per_1000 = r["cpu_ms_per_1000_frames"]
        full = r["worker_cpu_share_at_full_rate"]
        full_text = "-" if full is None else f"{100 * full:.1f}% of {r['full_rate_frames_per_s']:.0f}/s"
        lines.append(
            f"| {r['code']} | {_share(r['worker_cpu_share'])} | {_share(r['exchange_cpu_share'])} "
            f"| {_share(r['redis_cpu_share'])} | {_count(r['exchange_trades_per_s'])} "
            f"| {'-' if r['frames_per_s'] is None else format(r['frames_per_s'], '.0f')} "
            f"| {p.get('ticker', 0):.0f} | {p.get('trade', 0):.0f} | {p.get('orderbook', 0):.0f} "
            f"| {'-' if per_1000 is None else format(per_1000, '.0f')} "
            f"| {full_text} | {ratio(per_1000, floor)} |"
        )
    return "\n".join(lines)


def _share(value: float) -> str:
    return "-" if value != value else f"{100 * value:.1f}%"  # NaN: not measured (the bare reader's)


def _count(value: float) -> str:
    return "-" if value != value else f"{value:.0f}"


def parse_code(values: list[str] | None) -> dict[str, Path]:
    trees = {}
    for value in values or ["this=" + str(ROOT)]:
        name, sep, path = value.partition("=")
        if not sep or not name or not (Path(path) / "manage.py").exists():
            raise SystemExit(f"--code wants NAME=PATH to a source tree with manage.py, not {value!r}")
        trees[name] = Path(path).resolve()
    return trees


def main(args: argparse.Namespace) -> list[dict]:
    if not redis_answers():
        raise SystemExit("Redis is not answering on 127.0.0.1:6379: start it first")
    trees = parse_code(args.code)
    # The integration suite claims an odd database and uses the even one below it too: claim both.
    claims = (args.redis_db, args.redis_db + 1) if args.redis_db % 2 == 0 else (args.redis_db,)
    locks = []
    try:
        for db in claims:
            locks.append(claim_redis_db((db,), timeout=5)[1])
    except TimeoutError:
        raise SystemExit(f"Redis database {args.redis_db} is in use by another run: pass --redis-db") from None
    workdir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    symbols = [f"LOAD{i}USDT" for i in range(args.symbols)]
    stack = Stack(
        workdir=workdir,
        redis_url=f"redis://127.0.0.1:6379/{args.redis_db}",
        database_path=workdir / "db.sqlite3",
        extra_env={"MARKET_SYMBOLS": ",".join(symbols)},
    )
    print(
        f"# worker load: {args.symbols} symbols x (ticker 1/s, depth@100ms, {args.trades:g} trades/s), "
        f"{args.seconds:g} s measured after {args.warmup:g} s, {os.cpu_count()} CPUs; logs in {workdir}",
        flush=True,
    )
    run = Run(args, stack, workdir, symbols)
    rows: list[dict] = []
    try:
        run.start_exchange()
        names = list(trees)
        for repetition in range(args.repeat):
            for name in names[repetition % len(names) :] + names[: repetition % len(names)]:
                print(f"- {name} ({trees[name]}) ...", flush=True)
                rows.append(run.measure(name, trees[name]))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
            if not args.no_floor:
                print(f"- {FLOOR} (bench/bare_reader.py) ...", flush=True)
                rows.append(run.measure_floor())
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        if run.exchange is not None:
            run.exchange.stop()
        for lock in locks:
            lock.close()
    print(f"\n{table(rows)}\n", flush=True)
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="runstream's CPU at Binance-like rates (see docs/BENCHMARKS.md)")
    parser.add_argument("--symbols", type=int, default=100, help="symbols streamed (default 100)")
    parser.add_argument("--trades", type=float, default=20, help="trades per second per symbol (default 20)")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds per worker (default 30)")
    parser.add_argument("--warmup", type=float, default=20, help="seconds after subscribing, not measured (default 20)")
    parser.add_argument("--code", action="append", help="NAME=PATH: a source tree whose worker to measure (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="rotations over the trees (default 1)")
    parser.add_argument(
        "--redis-db", type=int, default=11, help="Redis database number, flushed (default 11, as bench/fanout.py's)"
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the bare reader (bench/bare_reader.py) after each rotation"
    )
    parser.add_argument("--profile", help="record each worker with py-spy (raw stacks + summary) into this dir")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    return parser.parse_args(argv)


def cli() -> int:
    args = parse_args()
    if args.profile:
        if not Path(PY_SPY).exists():
            raise SystemExit(f"--profile needs py-spy at {PY_SPY}: .venv/bin/pip install py-spy")
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows = main(args)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "cpus": os.cpu_count(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
