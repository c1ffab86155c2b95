"""The whole system in one process (`make run`): daphne, the market-data worker and the bot runner.

Daphne runs Twisted on an asyncio event loop, so the worker and the bots are plain asyncio tasks in
that same loop, started once the reactor runs and stopped before it shuts down. With
`MARKET_SOURCE=binance` the exchange is probed first; when it cannot be reached within a few
seconds, a local exchange simulator is started in-process instead, and that is said loudly (and
shown as `simulated` in /ws/status and on the demo page).

`serve_processes`: N daphne processes on one port, for machines with more cores. Each child listens
on its own socket with SO_REUSEPORT, so the kernel spreads new connections evenly over them; the
parent holds the port bound (never listening, so it takes no connections) for as long as it runs,
runs the worker and the bots itself (once), and stops every child on SIGTERM or SIGINT, or all of
them when one dies. The processes share groups, snapshots, history and the connection registry
through Redis, so REDIS_URL is required.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import urllib.request

from django.conf import settings

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 4.0  # seconds Binance gets to answer before the simulator takes its place
SHUTDOWN_GRACE = 5.0


CHILD_STOP_GRACE = 10.0  # seconds a daphne child gets to close its connections before SIGKILL
LISTEN_BACKLOG = 4096  # pending connections per child: a reconnect storm of thousands must not be refused


def serve(host: str, port: int, *, with_worker: bool = True, reuse_port: bool = False) -> None:
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server  # installs Twisted's asyncio reactor: before anything Twisted
    from twisted.internet import reactor

    from tradingsite.asgi import application

    background = Background()
    if with_worker:
        reactor.callWhenRunning(background.start)
        reactor.addSystemEventTrigger("before", "shutdown", background.stop)
    if reuse_port:
        listener = listening_socket(host, port)  # kept referenced: daphne adopts its descriptor
        endpoints = [f"fd:fileno={listener.fileno()}"]  # daphne's fd endpoint: IPv4 only
    else:
        endpoints = build_endpoint_description_strings(host=host, port=port)
    Server(
        application=application,
        endpoints=endpoints,
        signal_handlers=True,
        action_logger=None,
        verbosity=0,
    ).run()


def _reusable_socket(host: str, port: int) -> socket.socket:
    # IPv4: daphne adopts a socket through its `fd:` endpoint, which knows no other family.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port with SO_REUSEPORT: one of the group the kernel balances over."""
    sock = _reusable_socket(host, port)
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


def serve_processes(host: str, port: int, processes: int, *, with_worker: bool = True) -> int:
    """N daphne children on one port (SO_REUSEPORT); this process runs the worker. Returns the exit code."""
    reserved = _reusable_socket(host, port)  # fails now if the port is taken; port 0 picks one for all
    port = reserved.getsockname()[1]
    try:
        return asyncio.run(_supervise(host, port, processes, with_worker))
    finally:
        reserved.close()


async def _supervise(host: str, port: int, processes: int, with_worker: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    command = [sys.executable, "-m", "django", "serve", "--host", host, "--port", str(port), "--reuse-port"]
    children = []
    for number in range(1, processes + 1):
        # The children inherit DJANGO_SETTINGS_MODULE and the rest of the environment; the worker is ours.
        child = await asyncio.create_subprocess_exec(*command, "--no-worker")
        children.append(child)
        logger.info("serve: daphne process %d of %d (pid %d) on %s:%d", number, processes, child.pid, host, port)
    pids = ", ".join(str(c.pid) for c in children)
    worker_place = f"in pid {os.getpid()}" if with_worker else "not started here"
    print(f"serving on http://{host}:{port}/ with {processes} daphne processes (pids {pids}); worker {worker_place}")
    sys.stdout.flush()
    worker = asyncio.create_task(run_with_market_source(stop)) if with_worker else None
    exits = {asyncio.create_task(c.wait()): c for c in children}
    stopping = asyncio.create_task(stop.wait())
    done, _pending = await asyncio.wait([stopping, *exits], return_when=asyncio.FIRST_COMPLETED)
    # A child that ends after a stop was asked for (a terminal's Ctrl-C reaches every process) is no failure.
    failed = [] if stop.is_set() else [exits[task] for task in done if task in exits]
    for child in failed:
        logger.error("serve: daphne process %d exited with %s; stopping the others", child.pid, child.returncode)
    stop.set()
    await asyncio.gather(*(_stop_child(c) for c in children))
    if worker is not None:
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(worker, SHUTDOWN_GRACE)
    return 1 if failed else 0


async def _stop_child(child: asyncio.subprocess.Process) -> None:
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        try:
            await asyncio.wait_for(child.wait(), CHILD_STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()


class Background:
    """The worker and the bot runner, as tasks of the server's event loop."""

    def __init__(self) -> None:
        self.stop_event: asyncio.Event | None = None
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.stop_event = asyncio.Event()
        self.task = asyncio.get_event_loop().create_task(run_with_market_source(self.stop_event))

    def stop(self):
        """Twisted waits for the returned Deferred before it shuts the reactor down."""
        from twisted.internet.defer import Deferred

        if self.task is None or self.stop_event is None:
            return None
        self.stop_event.set()
        return Deferred.fromFuture(asyncio.ensure_future(self._wait()))

    async def _wait(self) -> None:
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self.task, SHUTDOWN_GRACE)


async def run_with_market_source(stop: asyncio.Event) -> None:
    """The worker, engine and bots (as `runstream` runs them) on Binance or the fallback simulator."""
    from tradingsite.worker import run_market_and_bots

    async with market_source() as options:
        await run_market_and_bots(stop, options)


@contextlib.asynccontextmanager
async def market_source():
    """WorkerOptions for Binance when it answers, else for a local simulator started here."""
    from marketdata.exchange_server import ExchangeSimulator, SimulatorConfig
    from marketdata.stream import WorkerOptions

    app = settings.APP
    if app.market_source == "binance" and await binance_answers(app.binance_rest_url):
        yield WorkerOptions.from_settings()
        return
    if app.market_source == "binance":
        shout(
            f"Binance did not answer at {app.binance_rest_url} within {PROBE_TIMEOUT:g} s: "
            "falling back to the local exchange SIMULATOR. Market data is simulated."
        )
    async with ExchangeSimulator(SimulatorConfig(symbols=app.market_symbols)).running() as simulator:
        yield WorkerOptions.from_settings(ws_url=simulator.ws_url, rest_url=simulator.rest_url, source="simulator")


async def binance_answers(rest_url: str) -> bool:
    def ping() -> bool:
        if not rest_url.startswith(("http://", "https://")):
            return False
        try:
            with urllib.request.urlopen(f"{rest_url}/api/v3/ping", timeout=PROBE_TIMEOUT) as response:  # noqa: S310
                return response.status == 200
        except OSError:
            return False

    return await asyncio.to_thread(ping)


def shout(message: str) -> None:
    line = "!" * min(len(message), 100)
    print(f"\n{line}\n{message}\n{line}\n", file=sys.stderr, flush=True)
    logger.warning("%s", message)
