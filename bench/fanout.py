"""Market fan-out benchmark: the same load against several servers, one after another, in one run.

    .venv/bin/python bench/fanout.py [--clients 200] [--symbols 3] [--rate 10] [--seconds 20]
                                     [--only ours,reference] [--repeat 3] [--json out.json] [--profile DIR]

Servers (see docs/BENCHMARKS.md):
  ours            daphne + tradingsite.asgi (MarketConsumer, market groups on RedisPubSubChannelLayer)
  ours-batched    the same server; the clients connect with ?batch=1 (waiting messages come as one array frame)
  ours-core       the same, but the "market" alias on the core RedisChannelLayer (bench.ours_core_settings)
  plain-channels  daphne + bench.plain_asgi (AsyncJsonWebsocketConsumer, core layer, send_json per event)
  reference       bench/reference_server.py (websockets.broadcast fed by redis.asyncio pub/sub)

Per server: start it, connect N clients (bench/clients.py, in 1-2 processes) subscribed to K symbols,
start bench/publisher.py (R updates/s per symbol, a warm-up, then S measured seconds), and measure
delivery, latency (arrival wall clock - publisher wall clock) and the server's CPU and peak RSS.
Needs Redis on 127.0.0.1:6379; uses its own database number (flushed) and BENCH*USDT symbols.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.harness import (  # noqa: E402
    DAPHNE,
    PYTHON,
    Gateway,
    Service,
    Stack,
    claim_redis_db,
    free_port,
    redis_answers,
)

BENCH = ROOT / "bench"
SERVERS = ("ours", "ours-batched", "ours-core", "plain-channels", "reference")
PY_SPY = str(Path(sys.executable).with_name("py-spy"))


@dataclass(frozen=True)
class Spec:
    settings: str  # DJANGO_SETTINGS_MODULE for the server and the publisher
    asgi: str | None  # daphne application, or None for the reference server
    publish: str  # publisher.py --mode
    query: str = ""  # the clients' query string (e.g. "?batch=1")


SPECS = {
    "ours": Spec("tradingsite.settings", "tradingsite.asgi:application", "market"),
    "ours-batched": Spec("tradingsite.settings", "tradingsite.asgi:application", "market", "?batch=1"),
    "ours-core": Spec("bench.ours_core_settings", "tradingsite.asgi:application", "market"),
    "plain-channels": Spec("bench.plain_settings", "bench.plain_asgi:application", "plain"),
    "reference": Spec("tradingsite.settings", None, "market"),
    # `manage.py serve --processes 2 --no-worker`: two daphne processes on one port (SO_REUSEPORT).
    # Not in the default set; its CPU and memory are the parent's and both children's together.
    "ours-2proc": Spec("tradingsite.settings", "processes:2", "market"),
    # The same server as "ours", its clients asking for MessagePack frames (?format=msgpack).
    "ours-msgpack": Spec("tradingsite.settings", "tradingsite.asgi:application", "market", "?format=msgpack"),
}

# --- processes ----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child: SIGKILL when the benchmark dies, so nothing outlives it even on SIGKILL."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class BoundService(Service):
    """A harness Service that cannot outlive the benchmark process."""

    def start(self) -> BoundService:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        return self


class Helper:
    """An asyncio subprocess (clients, publisher, py-spy) that speaks in lines on stdout."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process):
        self.name = name
        self.proc = proc

    @classmethod
    async def start(cls, name: str, args: list[str], env: dict, log: Path) -> Helper:
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *args,
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return cls(name, proc)

    async def line(self, prefix: str, timeout: float) -> str:
        """The rest of the first stdout line starting with `prefix` (other lines are skipped)."""

        async def find() -> str:
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise RuntimeError(f"{self.name} exited (code {await self.proc.wait()}) before {prefix!r}")
                text = raw.decode().strip()
                if text.startswith(prefix):
                    return text[len(prefix) :].strip()

        return await asyncio.wait_for(find(), timeout)

    def tell(self, text: str) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.proc.stdin.write(text.encode() + b"\n")

    async def stop(self, grace: float = 3) -> None:
        """End of stdin first (clients close their sockets), then SIGTERM, then SIGKILL."""
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(OSError, RuntimeError):
            self.proc.stdin.close()
        for ask in (None, self.proc.terminate, self.proc.kill):
            if ask is not None:
                with contextlib.suppress(ProcessLookupError):
                    ask()
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
                return
            except TimeoutError:
                continue


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def family(pid: int) -> list[int]:
    """A process and its children (what `serve --processes N` runs)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(int(c) for c in children)]


def family_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in family(pid))


def family_peak_rss_mb(pid: int) -> float:
    return sum(peak_rss_mb(p) for p in family(pid))


def listening_pids(port: int, pids: list[int]) -> list[int]:
    """Those of `pids` holding a listening socket on 127.0.0.1:`port` (from /proc)."""
    listening = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
            listening.add(f"socket:[{fields[9]}]")
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in listening for fd in Path(f"/proc/{pid}/fd").iterdir()):
                found.append(pid)
    return found


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=10)


def redis_cpu(url: str) -> float:
    """Redis server CPU (user + sys): the whole server, so other users of this Redis count too."""
    info = redis_client(url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# --- one server under load ----------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    stack: Stack
    workdir: Path
    symbols: list[str]

    @property
    def client_procs(self) -> int:
        if self.args.client_procs:
            return self.args.client_procs
        return 2 if self.args.clients >= 100 else 1

    def start_server(self, name: str) -> tuple[BoundService, str]:
        spec = SPECS[name]
        port = free_port()
        env = self.stack.env(DJANGO_SETTINGS_MODULE=spec.settings)
        log = self.workdir / f"{name}-{port}.log"
        if spec.asgi is None:
            # Asked now, not at start-up: the names follow the settings of the code being measured.
            names = market_pubsub_channels(self.stack, self.symbols)
            channels = [f"--channel={c}={s}" for c, s in zip(names, self.symbols, strict=True)]
            args = [
                PYTHON,
                str(BENCH / "reference_server.py"),
                "--port",
                str(port),
                "--redis-url",
                self.stack.redis_url,
            ]
            service = BoundService(name, [*args, *channels], env, log).start()
            wait_for_line(service, "ready", 30)
        elif spec.asgi.startswith("processes:"):
            processes = int(spec.asgi.split(":")[1])
            args = [PYTHON, "manage.py", "serve", "--processes", str(processes), "--no-worker", "--port", str(port)]
            service = BoundService(name, args, env, log).start()
            deadline = time.monotonic() + 60
            while len(listening_pids(port, family(service.process.pid)[1:])) < processes:
                if time.monotonic() > deadline or not service.alive():
                    raise RuntimeError(f"{name}: not every process listened on {port}; see {log}")
                time.sleep(0.2)
            Gateway(service, port).wait_ready(30)
        else:
            daphne = [PYTHON, str(BENCH / "gc_daphne.py")] if self.args.gc_log else [DAPHNE]
            args = [*daphne, "-b", "127.0.0.1", "-p", str(port), spec.asgi]
            service = BoundService(name, args, env, log).start()
            Gateway(service, port).wait_ready(30)
        return service, f"ws://127.0.0.1:{port}/ws/market{spec.query}"

    async def run(self, name: str) -> dict:
        args = self.args
        redis_client(self.stack.redis_url).flushdb()
        run_id = uuid.uuid4().hex[:12]
        warm, measured = round(args.warmup * args.rate), round(args.seconds * args.rate)
        helpers: list[Helper] = []
        server: BoundService | None = None
        try:
            server, url = self.start_server(name)
            pid = server.process.pid
            env = self.stack.env(DJANGO_SETTINGS_MODULE=SPECS[name].settings)
            clients = []
            shares = [
                args.clients // self.client_procs + (i < args.clients % self.client_procs)
                for i in range(self.client_procs)
            ]
            for i, share in enumerate(shares):
                out = self.workdir / f"{name}-{run_id}-lat{i}.bin"
                cmd = [PYTHON, str(BENCH / "clients.py"), "--url", url, "--clients", str(share)]
                cmd += ["--symbols", ",".join(self.symbols), "--run", run_id, "--last-seq", str(warm + measured - 1)]
                cmd += ["--out", str(out), "--deadline", str(args.warmup + args.seconds + args.drain + 120)]
                clients.append(
                    (await Helper.start(f"clients{i}", cmd, env, self.workdir / f"clients-{run_id}.log"), out)
                )
                helpers.append(clients[-1][0])
            await asyncio.gather(*(c.line("ready", 90) for c, _ in clients))
            cmd = [
                PYTHON,
                str(BENCH / "publisher.py"),
                "--mode",
                SPECS[name].publish,
                "--symbols",
                ",".join(self.symbols),
            ]
            cmd += [
                "--rate",
                str(args.rate),
                "--warmup",
                str(args.warmup),
                "--seconds",
                str(args.seconds),
                "--run",
                run_id,
            ]
            publisher = await Helper.start("publisher", cmd, env, self.workdir / f"publisher-{run_id}.log")
            helpers.append(publisher)
            await publisher.line("measure", args.warmup + 60)
            cpu0, redis0, t0, load0 = (
                family_cpu_seconds(pid),
                redis_cpu(self.stack.redis_url),
                time.monotonic(),
                os.getloadavg()[0],
            )
            wall0 = time.time()
            profiler = None
            if args.profile:
                profile_path = Path(args.profile) / f"{name}-{run_id}.txt"
                cmd = [PY_SPY, "record", "--pid", str(pid), "--duration", str(int(args.seconds)), "--rate", "100"]
                cmd += ["--format", "raw", "--output", str(profile_path)]
                profiler = await Helper.start("py-spy", cmd, os.environ.copy(), self.workdir / "py-spy.log")
                helpers.append(profiler)
            published = json.loads(await publisher.line("done", args.seconds + 120))
            pub_done = time.monotonic()
            results = []
            for helper, _out in clients:
                left = max(1.0, args.drain - (time.monotonic() - pub_done))
                try:
                    results.append(json.loads(await helper.line("result", left)))
                except TimeoutError:
                    helper.tell("stop")
                    results.append(json.loads(await helper.line("result", 30)))
            window = time.monotonic() - t0
            cpu = family_cpu_seconds(pid) - cpu0
            rss = family_peak_rss_mb(pid)
            redis_used = redis_cpu(self.stack.redis_url) - redis0
            alive = server.alive()
            outbox = outbox_counters(url) if SPECS[name].asgi and alive else {}
            crashes = server.log().count("Exception inside application")
            gc_pauses = [
                float(line.split()[2])
                for line in server.log().splitlines()
                if line.startswith("gc-pause ") and float(line.split()[1]) >= wall0
            ]
            if profiler is not None:
                await asyncio.wait_for(profiler.proc.wait(), args.seconds + 60)
                summarise_profile(profile_path)
            latencies, in_app, sent = array("q"), array("q"), array("q")
            for _helper, out in clients:
                series = array("q", out.read_bytes())
                third = len(series) // 3
                latencies.extend(series[:third])
                in_app.extend(series[third : 2 * third])
                sent.extend(series[2 * third :])
                out.unlink()
            return summarise(
                name=name,
                expected=published["published_measured"] * args.clients,
                results=results,
                latencies=latencies,
                in_app=in_app,
                sent=sent,
                cpu=cpu,
                rss=rss,
                window=window,
                redis_used=redis_used,
                published=published,
                load=(load0, os.getloadavg()[0]),
                server_alive=alive,
                crashes=crashes,
                outbox=outbox,
                gc_pauses=gc_pauses,
                profiled=bool(args.profile),
            )
        finally:
            await asyncio.gather(*(h.stop() for h in helpers), return_exceptions=True)
            if server is not None:
                if server.alive() is False and server.process.returncode not in (0, None, -15):
                    print(f"{name} exited with {server.process.returncode}:\n{server.log()[-3000:]}", file=sys.stderr)
                server.stop()


OUTBOX_METRICS = (
    "ws_inbox_conflations_total",  # the process fell behind: a waiting price replaced by a newer one
    "ws_outbox_conflations_total",
    "ws_outbox_drops_total",
    "ws_slow_consumer_closes_total",
)


def outbox_counters(ws_url: str) -> dict[str, float]:
    """Sums of the gateway's slow-client counters (0 for a server that does not count them)."""
    url = ws_url.split("?", 1)[0].replace("ws://", "http://").replace("/ws/market", "/metrics")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http://127.0.0.1 only)
            text = response.read().decode()
    except OSError:
        return {}
    totals = dict.fromkeys(OUTBOX_METRICS, 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


def wait_for_line(service: Service, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited:\n{service.log()[-3000:]}")
        if text in service.log():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{service.name} not ready:\n{service.log()[-3000:]}")


def per_second(latencies: array, sent: array) -> list[dict]:
    """p50 / p99 / max latency (ms) of the updates sent in each second of the measured window: stalls show."""
    if not sent:
        return []
    start = min(sent)
    seconds: dict[int, list[int]] = {}
    for latency, at in zip(latencies, sent, strict=True):
        seconds.setdefault((at - start) // 1_000_000_000, []).append(latency)
    rows = []
    for second, values in sorted(seconds.items()):
        values.sort()
        rows.append(
            {
                "second": second,
                "p50_ms": percentile(values, 0.5),
                "p99_ms": percentile(values, 0.99),
                "max_ms": values[-1] / 1e6,
            }
        )
    return rows


def percentile(ordered: list[int], fraction: float) -> float:
    """Nearest-rank percentile of a sorted list, in milliseconds."""
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index] / 1e6


def summarise(*, name: str, expected: int, results: list[dict], published: dict, **seen) -> dict:
    """One row: the clients' results, the latency series, and what was `seen` of the server."""
    cpu, window = seen["cpu"], seen["window"]
    latencies, in_app, sent = seen["latencies"], seen["in_app"], seen["sent"]
    received = sum(r["received"] for r in results)
    ordered = sorted(latencies)
    app_ordered = sorted(in_app)
    return {
        "server": name,
        "expected": expected,
        "received": received,
        "delivered": received / expected if expected else float("nan"),
        "p50_ms": percentile(ordered, 0.50),
        "p90_ms": percentile(ordered, 0.90),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": ordered[-1] / 1e6 if ordered else float("nan"),
        "recv_p50_ms": percentile(app_ordered, 0.50),
        "recv_p99_ms": percentile(app_ordered, 0.99),
        "per_second": per_second(latencies, sent),
        "cpu_s": cpu,
        "cpu_ms_per_1000": 1000 * cpu / (received / 1000) if received else float("nan"),
        "cpu_share": cpu / window,
        "peak_rss_mb": seen["rss"],
        "window_s": window,
        "client_cpu_s": sum(r["cpu_s"] for r in results),
        "publisher_cpu_s": published["cpu_s"],
        "publisher_worst_lag_ms": 1000 * published["worst_lag_s"],
        "redis_cpu_s": seen["redis_used"],
        "min_per_client": min(r["min_per_client"] for r in results),
        "incomplete_clients": sum(r["incomplete_clients"] for r in results),
        "array_frames": sum(r.get("array_frames", 0) for r in results),  # ?batch=1: frames holding an array
        "messages_in_arrays": sum(r.get("messages_in_arrays", 0) for r in results),
        "closed_early": sum(r["closed_early"] for r in results),
        "close_codes": sorted({code for r in results for code in r["close_codes"]}, key=str),
        "consumer_crashes": seen["crashes"],  # "Exception inside application" in the server's log
        "outbox": seen["outbox"],  # the gateway's own slow-client counters, from /metrics
        "gc_pauses_ms": seen["gc_pauses"],  # full collections in the measured window (--gc-log)
        "loadavg": seen["load"],
        "server_alive": seen["server_alive"],
        "profiled": seen["profiled"],
    }


# --- profiles -----------------------------------------------------------------------------------


# py-spy counts a thread blocked in these as busy; they are waits, not work.
IDLE_LEAVES = ("_worker (concurrent/futures/thread.py:81)", "EpollSelector.select (selectors.py:468)")

# Where a sample's time goes on the per-message path: the first bucket with a frame in the stack.
BUCKETS = (
    ("Twisted reactor: socket writes (doWrite -> send, stopWriting)", ("FileDescriptor.doWrite",)),
    ("Twisted reactor: socket reads", ("_readOrWrite",)),
    # The second wave's fan-out (realtime/fanout.py), per connection per update:
    ("fan-out: transport.write -> startWriting (add_writer, selectors.modify)", ("FileDescriptor.startWriting",)),
    ("fan-out: the frame's write (Twisted buffering / direct send)", ("raw_writer.", "direct_writer.", "_RawWriter.")),
    ("fan-out: Session.event per connection", ("Session.event",)),
    ("fan-out: backlog probe", ("backlog_probe", "_Backlog.")),
    ("fan-out: metrics.count_out", ("count_out",)),
    ("fan-out: Runner.market_event's own work", ("Runner.market_event",)),
    ("daphne + autobahn: handle_reply, framing, transport.write (startWriting)", ("Server.handle_reply",)),
    ("Channels aclose_old_connections hop (event-loop side)", ("aclose_old_connections",)),
    ("thread pool worker (sync code run by sync_to_async)", ("_worker (concurrent/futures/thread.py",)),
    ("JSON encoding per client (send_json)", ("encode_json",)),
    ("consumer handler code", ("Consumer.dispatch",)),
    ("channel-layer receive (per consumer)", ("_async_proxy", "ChannelLayer.receive", "LoopLayer.receive")),
    ("Channels await_many_dispatch (asyncio.wait, a task per message)", ("await_many_dispatch",)),
    ("Redis pub/sub reader", ("_do_receiving", "PubSub.listen")),
    ("websockets.broadcast (reference)", ("broadcast (websockets",)),
)


def summarise_profile(path: Path, top: int = 30) -> None:
    """Buckets, then self and inclusive sample counts per function, from py-spy's raw (collapsed) output."""
    if not path.exists():
        print(f"no profile at {path} (see the py-spy log)", file=sys.stderr)
        return
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples = int(count)
        if frames[-1] in IDLE_LEAVES:
            idle += samples
            continue
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
        label = next((b for b, marks in BUCKETS if any(m in f for f in frames for m in marks)), "other (event loop)")
        buckets[label] += samples
    total = total or 1
    lines = [f"{path.name}: {total} busy samples at 100/s ({idle} idle samples dropped)", "", "bucket %   where"]
    lines += [f"{100 * n / total:6.1f}  {b}" for b, n in buckets.most_common()]
    lines += ["", "self %   function"]
    lines += [f"{100 * n / total:6.1f}  {f}" for f, n in own.most_common(top)]
    lines += ["", "incl %   function"]
    lines += [f"{100 * n / total:6.1f}  {f}" for f, n in inclusive.most_common(top)]
    summary = path.with_suffix(".summary.txt")
    summary.write_text("\n".join(lines) + "\n")
    print(f"profile: {path} (summary: {summary})")


# --- report -------------------------------------------------------------------------------------


def ratio(value: float, reference: float | None) -> str:
    if reference is None or not reference or reference != reference or value != value:
        return "-"
    return f"{value / reference:.1f}x"


def table(rows: list[dict]) -> str:
    ref = next((r for r in rows if r["server"] == "reference"), None)
    head = (
        "| server | delivered | p50 ms | p99 ms | max ms | CPU s | CPU ms / 1000 msgs | CPU share | peak RSS MB "
        "| p50 vs ref | p99 vs ref | CPU/msg vs ref |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        out.append(
            f"| {r['server']} | {100 * r['delivered']:.2f}% | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['max_ms']:.0f} | {r['cpu_s']:.2f} | {r['cpu_ms_per_1000']:.1f} | {100 * r['cpu_share']:.0f}% "
            f"| {r['peak_rss_mb']:.0f} "
            f"| {ratio(r['p50_ms'], ref and ref['p50_ms'])} | {ratio(r['p99_ms'], ref and ref['p99_ms'])} "
            f"| {ratio(r['cpu_ms_per_1000'], ref and ref['cpu_ms_per_1000'])} |"
        )
    return "\n".join(out)


def outbox_cell(outbox: dict) -> str:
    return " / ".join(f"{outbox[k]:.0f}" for k in OUTBOX_METRICS) if outbox else "-"


def side_table(rows: list[dict]) -> str:
    head = (
        "| server | p50 / p99 ms at recv() | window s | clients CPU s | publisher CPU s | publisher late ms "
        "| Redis CPU s | min msgs/client | incomplete clients | closed by server (codes) | consumer crashes "
        "| inbox conflated / outbox conflated / dropped / slow closes "
        "| array frames (messages in them) | load avg before/after |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        out.append(
            f"| {r['server']} | {r['recv_p50_ms']:.1f} / {r['recv_p99_ms']:.1f} | {r['window_s']:.1f} "
            f"| {r['client_cpu_s']:.2f} | {r['publisher_cpu_s']:.2f} | {r['publisher_worst_lag_ms']:.0f} "
            f"| {r['redis_cpu_s']:.2f} | {r['min_per_client']} | {r['incomplete_clients']} "
            f"| {r['closed_early']} {r['close_codes'] or ''} | {r['consumer_crashes']} | {outbox_cell(r['outbox'])} "
            f"| {r['array_frames']} ({r['messages_in_arrays']}) | {r['loadavg'][0]:.2f} / {r['loadavg'][1]:.2f} |"
        )
    return "\n".join(out)


def medians(runs: list[list[dict]]) -> str:
    """Medians over repetitions of each figure and of each ratio taken within its own repetition."""
    names = [r["server"] for r in runs[0]]
    head = (
        "| server | runs | delivered | p50 ms | p99 ms | max ms | CPU ms / 1000 msgs | peak RSS MB "
        "| p50 vs ref | p99 vs ref | CPU/msg vs ref |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for name in names:
        mine = [next(r for r in rows if r["server"] == name) for rows in runs]
        refs = [next((r for r in rows if r["server"] == "reference"), None) for rows in runs]

        def med(key: str, rows: list[dict] = mine) -> float:
            return statistics.median(r[key] for r in rows)

        def med_ratio(key: str, mine: list[dict] = mine, refs: list[dict | None] = refs) -> str:
            pairs = [
                (m[key], ref[key])
                for m, ref in zip(mine, refs, strict=True)
                if ref and ref[key] and math.isfinite(ref[key]) and math.isfinite(m[key])
            ]
            return f"{statistics.median(a / b for a, b in pairs):.1f}x" if pairs else "-"

        out.append(
            f"| {name} | {len(mine)} | {100 * med('delivered'):.2f}% | {med('p50_ms'):.1f} | {med('p99_ms'):.1f} "
            f"| {med('max_ms'):.0f} | {med('cpu_ms_per_1000'):.1f} | {med('peak_rss_mb'):.0f} "
            f"| {med_ratio('p50_ms')} | {med_ratio('p99_ms')} | {med_ratio('cpu_ms_per_1000')} |"
        )
    return "\n".join(out)


# --- main ---------------------------------------------------------------------------------------


def market_pubsub_channels(stack: Stack, symbols: list[str]) -> list[str]:
    """The Redis pub/sub channel of each symbol's ticker group, asked of the project's market layer."""
    script = (
        "import asyncio, json\n"
        "from channels.layers import get_channel_layer\n"
        "from realtime import groups\n"
        "async def names():\n"
        "    layer = get_channel_layer(groups.MARKET_LAYER)\n"
        "    assert type(layer).__name__ == 'RedisPubSubChannelLayer', type(layer)\n"
        "    loop_layer = layer._get_layer()\n"
        f"    return [loop_layer._get_group_channel_name(groups.market('ticker', s)) for s in {symbols!r}]\n"
        "print(json.dumps(asyncio.run(names())))\n"
    )
    return json.loads(stack.manage("shell", "-c", script).stdout.strip().splitlines()[-1])


def source_version() -> str:
    """The commit measured, marked when the served code (realtime, tradingsite) has local edits."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "realtime", "tradingsite"], capture_output=True, text=True
    ).stdout.strip()
    return f"{head or 'unknown'}{' (+ local edits)' if dirty else ''}"


async def main(args: argparse.Namespace) -> list[list[dict]]:
    task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(SERVERS)
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise SystemExit(f"unknown server(s) {unknown}; choose from {', '.join(SPECS)}")
    if not redis_answers():
        raise SystemExit("Redis is not answering on 127.0.0.1:6379: start it first")
    try:  # the same lock files the test suites use: no other run flushes or feeds this database meanwhile
        _db, lock = claim_redis_db((args.redis_db,), timeout=5)
    except TimeoutError:
        raise SystemExit(f"Redis database {args.redis_db} is in use by another run: wait, or pass --redis-db") from None
    workdir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    symbols = [f"BENCH{i}USDT" for i in range(args.symbols)]
    stack = Stack(
        workdir=workdir,
        redis_url=f"redis://127.0.0.1:6379/{args.redis_db}",
        database_path=workdir / "db.sqlite3",
        # Every client connects from 127.0.0.1: lift the per-address limit, as a load test must.
        extra_env={"MARKET_SYMBOLS": ",".join(symbols), "WS_MAX_CONNECTIONS_PER_IP": "1000000"},
    )
    stack.manage("migrate", "--no-input")
    bench = Bench(args, stack, workdir, symbols)
    per_message = args.warmup + args.seconds + args.drain
    print(
        f"# fan-out: {args.clients} clients x {args.symbols} symbols x {args.rate:g}/s for {args.seconds:g} s "
        f"(+{args.warmup:g} s warm-up), {bench.client_procs} client process(es), {os.cpu_count()} CPUs, "
        f"commit {source_version()}; logs in {workdir}",
        flush=True,
    )
    runs: list[list[dict]] = []
    for repetition in range(args.repeat):
        order = names[repetition % len(names) :] + names[: repetition % len(names)]  # rotate: no fixed slot
        rows = []
        for name in order:
            print(f"- {name} ...", flush=True)
            rows.append(await asyncio.wait_for(bench.run(name), per_message + 300))
        rows.sort(key=lambda r: names.index(r["server"]))
        for r in rows:
            if r["delivered"] < 0.99 or r["consumer_crashes"] or r["closed_early"]:
                print(
                    f"! {r['server']}: delivered {100 * r['delivered']:.1f}%, {r['consumer_crashes']} consumer "
                    f"crashes, {r['closed_early']} sockets closed by the server: see {workdir}",
                    flush=True,
                )
        runs.append(rows)
        print(f"\n## run {repetition + 1} of {args.repeat}\n\n{table(rows)}\n\n{side_table(rows)}\n", flush=True)
        for r in rows:
            if args.gc_log and r["gc_pauses_ms"]:
                pauses = r["gc_pauses_ms"]
                print(
                    f"{r['server']}: {len(pauses)} full GCs in {r['window_s']:.0f} s, "
                    f"{sum(pauses):.0f} ms in all, longest {max(pauses):.0f} ms",
                    flush=True,
                )
    if args.repeat > 1:
        print(f"## medians over {args.repeat} runs\n\n{medians(runs)}\n", flush=True)
    lock.close()
    return runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Market fan-out benchmark (see docs/BENCHMARKS.md)")
    parser.add_argument("--clients", type=int, default=200, help="WebSocket clients (default 200)")
    parser.add_argument("--symbols", type=int, default=3, help="symbols each client subscribes to (default 3)")
    parser.add_argument("--rate", type=float, default=10, help="updates per second per symbol (default 10)")
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds (default 20)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds of load first (default 3)")
    parser.add_argument("--drain", type=float, default=5, help="seconds to wait for late messages (default 5)")
    parser.add_argument(
        "--only", help=f"comma-separated servers to run, from: {', '.join(SPECS)} (default: {', '.join(SERVERS)})"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of every server, for medians (default 1)")
    parser.add_argument("--client-procs", type=int, default=0, help="client processes (default: 2 from 100 clients)")
    parser.add_argument("--redis-db", type=int, default=11, help="Redis database number, flushed (default 11)")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument("--gc-log", action="store_true", help="run daphne under bench/gc_daphne.py: time full GCs")
    parser.add_argument("--profile", help="record each server with py-spy (raw stacks + summary) into this dir")
    return parser.parse_args(argv)


def cli() -> int:
    args = parse_args()
    if args.profile:
        if not Path(PY_SPY).exists():
            raise SystemExit(f"--profile needs py-spy at {PY_SPY}: .venv/bin/pip install py-spy")
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    try:
        runs = asyncio.run(main(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "cpus": os.cpu_count(), "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
