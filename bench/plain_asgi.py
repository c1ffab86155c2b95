"""The `plain-channels` server: market fan-out written the default Channels way.

`daphne bench.plain_asgi:application` with DJANGO_SETTINGS_MODULE=bench.plain_settings. One
`AsyncJsonWebsocketConsumer` per socket joins one group per symbol on the core Redis layer, and
every group event goes out with `send_json(event["message"])`: Channels' dispatch (with its
`aclose_old_connections` thread hop) and a `json.dumps` per client per message.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.plain_settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402


class PlainMarketConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.joined: list[str] = []
        await self.accept()

    async def receive_json(self, content, **kwargs):
        if content.get("type") != "subscribe_ticker":
            await self.send_json({"type": "error", "message": "only subscribe_ticker here"})
            return
        symbols = [str(s).upper() for s in content.get("symbols", [])]
        for symbol in symbols:
            group = f"market.ticker.{symbol.lower()}"
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.append(group)
        await self.send_json({"type": "subscribed", "stream": "ticker", "symbols": symbols})

    async def market_message(self, event):
        await self.send_json(event["message"])

    async def disconnect(self, code):
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([re_path(r"^ws/market/?$", PlainMarketConsumer.as_asgi())]),
    }
)
