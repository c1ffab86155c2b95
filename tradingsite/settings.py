"""Django settings. Every value that comes from the environment is read once, in config.py."""

import re
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url

from realtime import redis_client
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
    "rest_framework_simplejwt.token_blacklist",
    "axes",
    "csp",
    "channels",
    "realtime",
    "marketdata",
    "accounts",
    "tradingsite",  # process composition: the serve and runstream commands
    "security",
    "leadership",
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
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a lockout recorded during the view into the 429 response.
    "axes.middleware.AxesMiddleware",
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


def databases(url: str, *, pool_size: int, conn_max_age: int) -> dict:
    """The default database: SQLite when DATABASE_URL is unset, PostgreSQL (psycopg 3) in production.

    On PostgreSQL each process keeps a psycopg pool of up to `pool_size` connections (checked before
    they are handed out, so a restarted database is survived); with DATABASE_POOL_SIZE=0 Django's
    persistent connections are used instead (DATABASE_CONN_MAX_AGE seconds, with health checks).
    """
    db = dj_database_url.parse(url or f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=0)
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # Daphne, the worker and the test runner share one file: wait for locks instead of failing, and
        # take the write lock when a transaction starts, so two writers queue instead of deadlocking.
        db.setdefault("OPTIONS", {}).update(timeout=20, transaction_mode="IMMEDIATE")
    elif db["ENGINE"] == "django.db.backends.postgresql" and pool_size:
        # CONN_HEALTH_CHECKS makes Django give the pool psycopg's check: a connection is tested
        # before it is handed out.
        db.setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": pool_size, "timeout": 10}
        db.update(CONN_MAX_AGE=0, CONN_HEALTH_CHECKS=True)
    else:
        db.update(CONN_MAX_AGE=conn_max_age, CONN_HEALTH_CHECKS=True)
    return {"default": db}


DATABASES = databases(APP.database_url, pool_size=APP.database_pool_size, conn_max_age=APP.database_conn_max_age)

# django-axes first: a locked-out username or address is refused before any password is hashed.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

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
        "security.credentials.CredentialsJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "COERCE_DECIMAL_TO_STRING": True,
    # JSON bounded in size and depth; forms go through Django's own DATA_UPLOAD_MAX_MEMORY_SIZE
    # check. The browsable API only while debugging.
    "DEFAULT_PARSER_CLASSES": [
        "security.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    ],
    # Keyed on the client address of realtime.addresses, never on the raw X-Forwarded-For.
    "DEFAULT_THROTTLE_CLASSES": ["security.throttling.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": "600/minute", "login": f"{APP.login_rate_per_minute}/minute"},
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    "UPDATE_LAST_LOGIN": False,
    # A refresh token works once: each refresh returns a new one and blacklists the old, and a
    # revocation (security.revocation) blacklists them all.
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "TOKEN_OBTAIN_SERIALIZER": "security.credentials.LoginSerializer",
    "TOKEN_REFRESH_SERIALIZER": "security.credentials.RefreshSerializer",
}

# Request bodies: Django refuses larger form bodies, security.parsers larger JSON ones (413).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# --- login lockout (django-axes): per username and per client address ------------------------------
AXES_FAILURE_LIMIT = APP.login_failure_limit
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one reaching the limit locks
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the lockout ends 15 minutes after it began
AXES_RESET_ON_SUCCESS = False  # a success must not wipe an address's failures (password spraying)
AXES_CLIENT_IP_CALLABLE = "realtime.addresses.request_client_address"
AXES_USERNAME_CALLABLE = "security.throttling.lockout_username"
AXES_HTTP_RESPONSE_CODE = 429
AXES_DISABLE_ACCESS_LOG = True  # no database row per successful login
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "password"]
# Shared by every instance: the Redis cache when there is one, else the database (embedded mode).
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler" if APP.redis_url else "axes.handlers.database.AxesDatabaseHandler"

# --- browser-facing headers -----------------------------------------------------------------------
# The page loads only its own scripts, styles and sockets; nobody may frame it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# TLS ends at a proxy in front (DJANGO_BEHIND_HTTPS_PROXY=1): believe its X-Forwarded-Proto, send
# every plain-HTTP request to HTTPS, keep cookies off plain HTTP and tell browsers to stay on HTTPS.
if APP.behind_https_proxy:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = APP.hsts_seconds
SECURE_HSTS_INCLUDE_SUBDOMAINS = APP.hsts_seconds > 0
SECURE_HSTS_PRELOAD = APP.hsts_seconds > 0


def redis_host(url: str) -> dict:
    """A channels-redis host whose read timeout outlasts the core layer's 5 s blocking BZPOPMIN.

    redis-py 8 reads with a 5 s socket timeout by default: exactly as long as channels-redis blocks
    waiting for a message, so an idle consumer would fail with a read timeout. A Sentinel URL
    becomes a Sentinel-managed host, which finds the new master after a failover.
    """
    return redis_client.channel_layer_host(url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=15)


def layer_prefix(redis_url: str) -> str:
    """Pub/sub channels ignore Redis database numbers: name them by database so deployments sharing
    one Redis server on different databases never hear each other's market data."""
    return redis_client.database_label(redis_url)


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
        "default": {
            "BACKEND": "realtime.cache_backend.Cache",
            # A list, so Django does not split a Sentinel URL's host list on its commas.
            "LOCATION": [redis_url],
            "KEY_PREFIX": "tg",
            "OPTIONS": {
                "pool_class": "realtime.redis_client.CachePool",
                "socket_timeout": redis_client.SOCKET_TIMEOUT,
                "socket_connect_timeout": redis_client.CONNECT_TIMEOUT,
            },
        }
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
        "axes": {"level": "WARNING"},  # its version banner at every start, a line per login at INFO
    },
}
