"""Django settings. Every value that comes from the environment is read once, in config.py."""

import re
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url

from tradingsite import config

BASE_DIR = Path(__file__).resolve().parent.parent
APP = config.load()

SECRET_KEY = APP.secret_key
DEBUG = APP.debug
ALLOWED_HOSTS = list(APP.allowed_hosts)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "channels",
    "realtime",
    "marketdata",
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tradingsite.urls"
ASGI_APPLICATION = "tradingsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(APP.database_url or f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=0)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Daphne, the worker and the test runner share one file: wait for locks instead of failing, and
    # take the write lock when a transaction starts, so two writers queue instead of deadlocking.
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=20, transaction_mode="IMMEDIATE")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Daphne serves static files through WhiteNoise straight from the app and project folders, so the
# page works with or without `collectstatic` (which production deployments still run).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# WhiteNoise warns about a missing STATIC_ROOT from its caller's frame (stacklevel=3), so a filter on
# its own module never matches: match the message for this folder, which is absent until collectstatic.
warnings.filterwarnings("ignore", message=re.escape(f"No directory at: {STATIC_ROOT}"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "COERCE_DECIMAL_TO_STRING": True,
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": "600/minute", "anon": "60/minute"},
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    "UPDATE_LAST_LOGIN": False,
}


def redis_host(url: str) -> dict:
    """A channels-redis host whose read timeout outlasts the core layer's 5 s blocking BZPOPMIN.

    redis-py 8 reads with a 5 s socket timeout by default: exactly as long as channels-redis blocks
    waiting for a message, so an idle consumer would fail with a read timeout.
    """
    return {"address": url, "socket_timeout": 30, "socket_connect_timeout": 5, "health_check_interval": 15}


def layer_prefix(redis_url: str) -> str:
    """Pub/sub channels ignore Redis database numbers: name them by database so deployments sharing
    one Redis server on different databases never hear each other's market data."""
    from urllib.parse import urlparse

    return f"db{(urlparse(redis_url).path.strip('/') or '0')}"


def channel_layers(redis_url: str | None) -> dict:
    if not redis_url:
        return {
            "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10_000}},
            "market": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10_000}},
        }
    return {
        # Trading events: the core layer (a list per channel), sized so a live consumer never
        # reaches capacity; a consumer that cannot keep up is closed by its outbox instead.
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [redis_host(redis_url)],
                "capacity": 10_000,
                "expiry": 60,
                "prefix": f"tg.{layer_prefix(redis_url)}",
            },
        },
        # Market data: one PUBLISH per update whatever the number of listeners (see docs/BENCHMARKS.md).
        "market": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_host(redis_url)], "prefix": f"tgm.{layer_prefix(redis_url)}"},
        },
    }


def caches(redis_url: str | None) -> dict:
    """Shared small state (last prices, snapshots, worker status): Redis across processes, else memory."""
    if not redis_url:
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    return {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "tg"}
    }


CHANNEL_LAYERS = channel_layers(APP.redis_url)
CACHES = caches(APP.redis_url)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}
