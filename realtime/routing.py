from django.urls import re_path

from realtime.consumers import MarketConsumer, TradingConsumer

websocket_urlpatterns = [
    re_path(r"^ws/trading/?$", TradingConsumer.as_asgi()),
    re_path(r"^ws/market/?$", MarketConsumer.as_asgi()),
]
