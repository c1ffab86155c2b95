"""`python manage.py sync_symbols`: load the exchange's symbols and trading filters into the Symbol table."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketdata import rest, services
from marketdata.exceptions import MarketDataError


class Command(BaseCommand):
    help = (
        "Read $BINANCE_REST_URL/api/v3/exchangeInfo: update step, tick and minimum notional of known symbols, "
        "enable the MARKET_SYMBOLS that trade, disable symbols that no longer trade."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--all", dest="add_all", action="store_true", help="also add every other trading symbol, disabled"
        )
        parser.add_argument("--timeout", type=float, default=10.0)

    def handle(self, *args, add_all: bool, timeout: float, **options):
        url = settings.APP.binance_rest_url
        try:
            infos = asyncio.run(rest.fetch_exchange_symbols(url, timeout))
        except MarketDataError as error:
            raise CommandError(f"could not load exchangeInfo from {url}: {error}") from None
        summary = services.symbol_sync(infos=infos, wanted=settings.APP.market_symbols, add_all=add_all)
        for key, names in summary.items():
            self.stdout.write(f"{key}: {len(names)} {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}")
