"""ASGI entry point: `daphne tradingsite.asgi:application`."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings")

from django.core.asgi import get_asgi_application

# Django first: it sets up the apps that the consumers' imports need.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

from realtime import drain  # noqa: E402
from realtime.middleware import JWTAuthMiddleware, OriginlessClientsAllowed  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402
from tradingsite.unknown_path import unknown_websocket_path  # noqa: E402

# Any other path is refused with an error frame and close 4404, never a 500 ("No route found").
routes = [*websocket_urlpatterns, re_path(r"", unknown_websocket_path)]
websocket_stack = JWTAuthMiddleware(URLRouter(routes))

application = ProtocolTypeRouter(
    {
        "http": drain.counted(django_asgi_app),
        "websocket": OriginlessClientsAllowed(AllowedHostsOriginValidator(websocket_stack), websocket_stack),
    }
)

# Under daphne, SIGTERM drains: clients are told to reconnect elsewhere (1012) before the server stops.
drain.install(settings.APP.drain_seconds)

# Everything loaded so far lives as long as the process: keep it out of the garbage collector's
# full collections, which otherwise stall every connection to re-scan it (docs/BENCHMARKS.md).
gc.freeze()
