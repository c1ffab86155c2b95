"""`python manage.py simulate_exchange --port P`: a local exchange speaking Binance's protocol."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketdata.exchange_server import ExchangeSimulator, SimulatorConfig, serve_until_signalled


class Command(BaseCommand):
    help = "Run a local exchange (Binance stream and REST protocol) until SIGINT or SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=9443, help="port to listen on (0: any free port)")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--symbols", default="", help="comma list (default: MARKET_SYMBOLS)")
        parser.add_argument("--interval", type=float, default=0.1, help="seconds per market step (@depth@100ms)")
        parser.add_argument(
            "--trade-chance",
            type=float,
            default=0.5,
            help="expected trades per symbol and step (2: 20 trades/s at 100 ms)",
        )
        parser.add_argument("--seed", type=int, default=None, help="seed for a repeatable random walk")

    def handle(self, *args, **options):
        symbols = tuple(s.strip().upper() for s in options["symbols"].split(",") if s.strip())
        if options["interval"] <= 0:
            raise CommandError("--interval must be positive")
        if options["trade_chance"] < 0:
            raise CommandError("--trade-chance must not be negative")
        config = SimulatorConfig(
            symbols=symbols or tuple(settings.APP.market_symbols),
            interval=options["interval"],
            trade_chance=options["trade_chance"],
            seed=options["seed"],
        )
        asyncio.run(serve_until_signalled(config, options["host"], options["port"], ready=self._announce))

    def _announce(self, simulator: ExchangeSimulator) -> None:
        # One line a supervisor (or a test harness) can parse for the port actually bound.
        self.stdout.write(f"exchange simulator listening on {simulator.ws_url} (REST {simulator.rest_url})")
        self.stdout.flush()
