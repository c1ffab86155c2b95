"""`python manage.py serve`: the whole system in one process (what `make run` starts), or N processes."""

import socket

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tradingsite.server import serve, serve_processes


class Command(BaseCommand):
    help = (
        "Serve HTTP and WebSockets with daphne and run the market-data worker and bots in the same process; "
        "with --processes N, N daphne processes share the port and this process runs the worker."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-worker", action="store_true", help="serve only; run `manage.py runstream` separately (with REDIS_URL)"
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="daphne processes sharing the port (SO_REUSEPORT), joined by Redis: needs REDIS_URL when above 1",
        )
        parser.add_argument(
            "--reuse-port",
            action="store_true",
            help="listen with SO_REUSEPORT, beside other processes on the same port (what --processes starts)",
        )

    def handle(self, *args, host, port, no_worker, processes, reuse_port, **options):
        if processes < 1:
            raise CommandError("--processes must be at least 1")
        if processes > 1 and not settings.APP.redis_url:
            raise CommandError(
                f"--processes {processes} needs REDIS_URL: the processes share market groups, snapshots, "
                "history and the connection registry through Redis (without it each would be a separate system)"
            )
        if not reuse_port:
            check_can_listen(host, port)  # daphne would log the failure and still exit 0
        layer = "Redis" if settings.APP.redis_url else "in-memory (one process)"
        if processes > 1:
            self.stdout.write(f"Trading gateway on http://{host}:{port}/ in {processes} processes")
            self.stdout.write(f"Channel layer: {layer}; market source: {settings.APP.market_source}")
            self.stdout.flush()
            code = serve_processes(host, port, processes, with_worker=not no_worker)
            if code:
                raise CommandError("a daphne process exited; all were stopped", returncode=code)
            return
        self.stdout.write(f"Trading gateway on http://{host}:{port}/  (admin: /admin/, status: /ws/status)")
        self.stdout.write(f"Channel layer: {layer}; market source: {settings.APP.market_source}")
        serve(host, port, with_worker=not no_worker, reuse_port=reuse_port)


def check_can_listen(host: str, port: int) -> None:
    """A CommandError (exit status 1) naming the address and the way out when it cannot be bound."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted listens
            probe.bind((host, port))
    except OSError as error:
        raise CommandError(
            f"cannot listen on {host}:{port}: {error.strerror or error}. "
            f"Stop what is using it, or choose another port: make run PORT={port + 10}"
        ) from None
