"""The whole system in one process (`make run`): daphne, the market-data worker and the bot runner.

Daphne runs Twisted on an asyncio event loop, so the worker and the bots are plain asyncio tasks in
that same loop, started once the reactor runs and stopped before it shuts down. With
`MARKET_SOURCE=binance` the exchange is probed first; when it cannot be reached within a few
seconds, a local exchange simulator is started in-process instead, and that is said loudly (and
shown as `simulated` in /ws/status and on the demo page).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import urllib.request

from django.conf import settings

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 4.0  # seconds Binance gets to answer before the simulator takes its place
SHUTDOWN_GRACE = 5.0


def serve(host: str, port: int, *, with_worker: bool = True) -> None:
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server  # installs Twisted's asyncio reactor: before anything Twisted
    from twisted.internet import reactor

    from tradingsite.asgi import application

    background = Background()
    if with_worker:
        reactor.callWhenRunning(background.start)
        reactor.addSystemEventTrigger("before", "shutdown", background.stop)
    Server(
        application=application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        signal_handlers=True,
        action_logger=None,
        verbosity=0,
    ).run()


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
