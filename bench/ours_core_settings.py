"""Settings for the `ours-core` variant: our MarketConsumer, but market groups on the core Redis layer.

Everything else is the project's configuration; only the "market" alias points at a
`channels_redis.core.RedisChannelLayer` (same options as the project's "default" layer, its own
prefix). It isolates the layer's cost from the consumer's.
"""

from django.core.exceptions import ImproperlyConfigured

from tradingsite.settings import *  # noqa: F403
from tradingsite.settings import APP
from tradingsite.settings import CHANNEL_LAYERS as PROJECT_CHANNEL_LAYERS

if APP.embedded:
    raise ImproperlyConfigured("bench.ours_core_settings needs REDIS_URL: the benchmark compares Redis layers")

_core = PROJECT_CHANNEL_LAYERS["default"]
CHANNEL_LAYERS = {
    "default": _core,
    "market": {"BACKEND": _core["BACKEND"], "CONFIG": {**_core["CONFIG"], "prefix": "tgmcore"}},
}
