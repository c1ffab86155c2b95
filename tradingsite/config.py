"""The one place that reads the environment: a typed, frozen settings object built once."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ImproperlyConfigured

from realtime import protocol

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "ADAUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT")
INSECURE_DEV_KEY = "insecure-dev-key-only-for-DJANGO_DEBUG-on"
YEAR = 365 * 24 * 3600  # HSTS max-age once TLS is on: what `check --deploy` and browsers' lists expect


def _bool(env: dict, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def _int(env: dict, name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def _positive_float(env: dict, name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number, not {raw!r}")
    return value


def _rate(env: dict, name: str, default: str) -> Decimal:
    """A fee rate: a plain decimal in [0, 0.1), e.g. 0.001 for 0.1 %."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return Decimal(default)
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or not Decimal(0) <= value < Decimal("0.1"):
        raise ImproperlyConfigured(f"{name} must be a decimal rate between 0 and 0.1 (0.001 is 0.1 %), not {raw!r}")
    return value


def _symbols(env: dict, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    symbols = tuple(s.upper() for s in _list(env, name, default))
    malformed = [s for s in symbols if not protocol.SYMBOL_PATTERN.fullmatch(s)]
    if malformed:
        raise ImproperlyConfigured(f"{name}: malformed symbol(s) {', '.join(malformed)}; use e.g. BTCUSDT")
    return symbols


def _list(env: dict, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True)
class Config:
    secret_key: str
    debug: bool
    allowed_hosts: tuple[str, ...]
    database_url: str
    redis_url: str | None
    binance_ws_url: str
    binance_rest_url: str
    market_symbols: tuple[str, ...]
    market_source: str
    orderbook_depth: int
    ws_heartbeat_interval: int
    ws_max_connections_per_user: int
    ws_max_connections_per_ip: int
    trusted_proxy_count: int
    ws_message_queue_size: int
    ws_reconnect_timeout: int
    ws_max_message_bytes: int
    ws_rate_limit_per_second: float
    ws_rate_limit_burst: int
    ws_max_items_per_request: int
    ws_max_subscriptions_per_connection: int
    # Abuse resistance (README "Security"): login lockout, which proxies to believe, TLS in front.
    login_failure_limit: int
    login_rate_per_minute: int
    behind_https_proxy: bool
    hsts_seconds: int
    ws_history_size: int = 1000
    ws_history_ttl: int = 900
    taker_fee_rate: Decimal = Decimal("0.001")
    maker_fee_rate: Decimal = Decimal("0.001")
    max_price_age: float = 10.0  # seconds: a market order needs a last price at least this fresh
    max_open_orders_per_user: int = 200
    max_bots_per_user: int = 20
    ws_snapshot_rate_per_user: int = 200  # snapshot messages a second one user may load (per process)
    database_pool_size: int = 10
    database_conn_max_age: int = 0
    worker_lease_ttl: float = 5.0
    worker_metrics_port: int = 0
    worker_metrics_addr: str = "127.0.0.1"
    drain_seconds: float = 10.0  # SIGTERM: the longest a daphne instance waits for its clients to go

    @property
    def embedded(self) -> bool:
        """No Redis: one process, in-memory channel layer, worker started inside the server."""
        return not self.redis_url


def load(env: dict | None = None) -> Config:
    env = dict(os.environ if env is None else env)
    debug = _bool(env, "DJANGO_DEBUG", False)
    secret_key = env.get("DJANGO_SECRET_KEY", "")
    if not secret_key:
        if not debug:
            raise ImproperlyConfigured(
                "DJANGO_SECRET_KEY is not set. Set it, or set DJANGO_DEBUG=1 for local development."
            )
        secret_key = INSECURE_DEV_KEY
    source = env.get("MARKET_SOURCE", "binance").strip().lower() or "binance"
    if source not in {"binance", "simulator"}:
        raise ImproperlyConfigured(f"MARKET_SOURCE must be binance or simulator, not {source!r}")
    symbols = _symbols(env, "MARKET_SYMBOLS", DEFAULT_SYMBOLS)
    https = _bool(env, "DJANGO_BEHIND_HTTPS_PROXY", False)
    redis_url = env.get("REDIS_URL") or None
    if redis_url:
        from realtime import redis_client

        redis_client.parse(redis_url)  # a malformed URL stops the start here, saying the expected form
    lease_ttl = _positive_float(env, "WORKER_LEASE_TTL", 5.0)
    if lease_ttl < 1:
        raise ImproperlyConfigured(f"WORKER_LEASE_TTL must be at least 1 second, not {lease_ttl:g}")
    return Config(
        secret_key=secret_key,
        debug=debug,
        allowed_hosts=_list(env, "DJANGO_ALLOWED_HOSTS", ("localhost", "127.0.0.1", "[::1]")),
        database_url=env.get("DATABASE_URL", ""),
        redis_url=redis_url,
        binance_ws_url=env.get("BINANCE_WS_URL", "wss://stream.binance.com:9443").rstrip("/"),
        binance_rest_url=env.get("BINANCE_REST_URL", "https://api.binance.com").rstrip("/"),
        market_symbols=symbols,
        market_source=source,
        orderbook_depth=_int(env, "ORDERBOOK_DEPTH", 20, minimum=1),
        ws_heartbeat_interval=_int(env, "WS_HEARTBEAT_INTERVAL", 30, minimum=1),
        ws_max_connections_per_user=_int(env, "WS_MAX_CONNECTIONS_PER_USER", 5, minimum=1),
        ws_max_connections_per_ip=_int(env, "WS_MAX_CONNECTIONS_PER_IP", 100, minimum=1),
        trusted_proxy_count=_int(env, "TRUSTED_PROXY_COUNT", 0, minimum=0),
        ws_message_queue_size=_int(env, "WS_MESSAGE_QUEUE_SIZE", 100, minimum=1),
        ws_reconnect_timeout=_int(env, "WS_RECONNECT_TIMEOUT", 60, minimum=1),
        ws_max_message_bytes=_int(env, "WS_MAX_MESSAGE_BYTES", 65536, minimum=256),
        ws_rate_limit_per_second=_positive_float(env, "WS_RATE_LIMIT_PER_SECOND", 10.0),
        ws_rate_limit_burst=_int(env, "WS_RATE_LIMIT_BURST", 20, minimum=1),
        ws_max_items_per_request=_int(env, "WS_MAX_ITEMS_PER_REQUEST", 50, minimum=1),
        ws_max_subscriptions_per_connection=_int(env, "WS_MAX_SUBSCRIPTIONS", 200, minimum=1),
        login_failure_limit=_int(env, "LOGIN_FAILURE_LIMIT", 5, minimum=1),
        login_rate_per_minute=_int(env, "LOGIN_RATE_PER_MINUTE", 60, minimum=1),
        behind_https_proxy=https,
        hsts_seconds=_int(env, "DJANGO_HSTS_SECONDS", YEAR if https else 0, minimum=0),
        ws_history_size=_int(env, "WS_HISTORY_SIZE", 1000, minimum=1),
        ws_history_ttl=_int(env, "WS_HISTORY_TTL", 900, minimum=1),
        taker_fee_rate=_rate(env, "TAKER_FEE_RATE", "0.001"),
        maker_fee_rate=_rate(env, "MAKER_FEE_RATE", "0.001"),
        max_price_age=_positive_float(env, "MAX_PRICE_AGE", 10.0),
        max_open_orders_per_user=_int(env, "MAX_OPEN_ORDERS_PER_USER", 200, minimum=1),
        max_bots_per_user=_int(env, "MAX_BOTS_PER_USER", 20, minimum=1),
        ws_snapshot_rate_per_user=_int(env, "WS_SNAPSHOT_RATE_PER_USER", 200, minimum=1),
        database_pool_size=_int(env, "DATABASE_POOL_SIZE", 10, minimum=0),
        database_conn_max_age=_int(env, "DATABASE_CONN_MAX_AGE", 0, minimum=0),
        worker_lease_ttl=lease_ttl,
        worker_metrics_port=_int(env, "WORKER_METRICS_PORT", 0, minimum=0),
        worker_metrics_addr=env.get("WORKER_METRICS_ADDR", "127.0.0.1").strip() or "127.0.0.1",
        drain_seconds=_positive_float(env, "DRAIN_SECONDS", 10.0),
    )
