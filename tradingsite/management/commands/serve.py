"""`python manage.py serve`: the whole system in one process (what `make run` starts)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from tradingsite.server import serve


class Command(BaseCommand):
    help = "Serve HTTP and WebSockets with daphne and run the market-data worker and bots in the same process."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-worker", action="store_true", help="serve only; run `manage.py runstream` separately (with REDIS_URL)"
        )

    def handle(self, *args, host, port, no_worker, **options):
        layer = "Redis" if settings.APP.redis_url else "in-memory (one process)"
        self.stdout.write(f"Trading gateway on http://{host}:{port}/  (admin: /admin/, status: /ws/status)")
        self.stdout.write(f"Channel layer: {layer}; market source: {settings.APP.market_source}")
        serve(host, port, with_worker=not no_worker)
