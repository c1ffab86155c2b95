"""Settings for the `plain-channels` server: the project's settings with only the core Redis layer.

Market groups then live on `channels_redis.core.RedisChannelLayer` (configured exactly as the
project configures its "default" layer), which is what a default Channels setup uses for everything.
"""

from django.core.exceptions import ImproperlyConfigured

from tradingsite.settings import *  # noqa: F403
from tradingsite.settings import APP
from tradingsite.settings import CHANNEL_LAYERS as PROJECT_CHANNEL_LAYERS

if APP.embedded:
    raise ImproperlyConfigured("bench.plain_settings needs REDIS_URL: the benchmark compares Redis layers")

ASGI_APPLICATION = "bench.plain_asgi.application"
CHANNEL_LAYERS = {"default": PROJECT_CHANNEL_LAYERS["default"]}
