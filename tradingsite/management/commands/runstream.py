"""`python manage.py runstream`: the market-data worker with the paper-trading engine and bots."""

from __future__ import annotations

import asyncio
import signal

from django.core.management.base import BaseCommand, CommandError

from marketdata.stream import WorkerOptions
from tradingsite.worker import keep_database_connections, run_market_and_bots, tune_garbage_collector


class Command(BaseCommand):
    help = (
        "Stream market data from the exchange (BINANCE_WS_URL) into the channel layer, fill paper orders and run bots."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--stale-after",
            type=float,
            default=30.0,
            help="seconds without any frame from the exchange before the connection is replaced",
        )

    def handle(self, *args, **options):
        if options["stale_after"] <= 0:
            raise CommandError("--stale-after must be positive")
        tune_garbage_collector()
        keep_database_connections()
        asyncio.run(self._run(WorkerOptions.from_settings(stale_after=options["stale_after"])))

    async def _run(self, worker_options: WorkerOptions) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)  # finish cleanly: close sockets, drain listeners, final status
        await run_market_and_bots(stop, worker_options)
